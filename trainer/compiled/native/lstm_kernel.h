// descent's fused LSTM over a whole sequence, forward and backward, on the CPU: the arithmetic
// behind the DescentLstm ops (lstm_op.cc). tfjs's cell: gates i, f, g (the candidate, tanh), o in
// that order along the 4·units axis, c_t = f·c_{t−1} + i·g, h_t = o·tanh(c_t), zero initial state.
//
// The input projection of every step is one matrix product before the recurrence; per step only
// h_{t−1}·Wh remains. Backward, per step only dh_{t−1} = dz_t·Whᵀ; the weights' gradients and
// the input's are single products over every step. One thread; deterministic (the same inputs
// give the same bits).
#pragma once

#include <cstdint>

namespace descent {

// Sizes, and the widths padded to a multiple of 16 floats that products write.
struct LstmDims {
  int64_t B, T, F, U;
  int64_t G, Gp, Up, Fp;

  LstmDims(int64_t batch, int64_t steps, int64_t features, int64_t units);

  // What the forward pass saves for the backward pass, in one buffer of WorkspaceSize() floats.
  int64_t WorkspaceSize() const;
  // Scratch floats each pass needs besides its inputs and outputs.
  int64_t ForwardScratch() const;
  int64_t BackwardScratch() const;

  struct Workspace {
    float* x;      // [T·B, F], time-major rows (t, b)
    float* gates;  // [T·B, Gp], activated i, f, g, o
    float* c;      // [T·B, U]
    float* h;      // [T·B, U]
  };
  Workspace Split(float* workspace) const;
};
using LstmWorkspace = LstmDims::Workspace;

struct LstmForwardArgs {
  const float* x;     // [B, T, F]
  const float* wx;    // [F, 4U]
  const float* wh;    // [U, 4U]
  const float* bias;  // [4U]
  bool sequence;      // y is [B, T, U] (every step's h) or [B, U] (the last)
  float* y;
  float* workspace;
  float* scratch;
};

struct LstmBackwardArgs {
  const float* wx;
  const float* wh;
  const float* workspace;  // the forward pass's
  const float* dy;         // the gradient of y
  bool sequence;
  float* dx;   // [B, T, F]
  float* dwx;  // [F, 4U]
  float* dwh;  // [U, 4U]
  float* db;   // [4U]
  float* scratch;
};

// The instruction set the passes run with on this CPU: "avx512", "avx2" or "portable".
const char* LstmIsa();
void LstmForward(const LstmDims& d, const LstmForwardArgs& args);
void LstmBackward(const LstmDims& d, const LstmBackwardArgs& args);

}  // namespace descent
