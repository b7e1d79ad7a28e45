// Registers descent's fused LSTM ops (lstm_op.cc) with TensorFlow, once per process.
#pragma once

#include <string>

namespace descent {

// "" when the ops are registered; otherwise why TensorFlow refused them.
std::string RegisterLstmOps();

}  // namespace descent
