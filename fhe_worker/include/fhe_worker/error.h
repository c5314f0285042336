// The error type of the fhe_worker library for start-up failures (bad options, a model that does
// not load, a socket that cannot be bound). Failures while serving never throw out of the
// service: they become typed error replies (protocol::Error on the wire).
#pragma once

#include <stdexcept>

namespace fhe_worker {

class WorkerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace fhe_worker
