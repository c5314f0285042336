// The exception of base/: an operating-system call on a file failed. The message names the file
// and the reason (strerror), in one line a user can act on.
#pragma once

#include <stdexcept>
#include <string>

namespace base {

class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace base
