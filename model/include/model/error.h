// The error type of the model library.
#pragma once

#include <stdexcept>

namespace model {

// Every refusal of the library (malformed checkpoint, bad config, missing tensor, tokenizer
// failure) is reported as a model::ModelError whose message is one readable line naming the file
// and, where there is one, the tensor.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace model
