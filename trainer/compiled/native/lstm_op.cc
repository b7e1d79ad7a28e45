// TensorFlow ops of descent's fused LSTM (lstm_kernel.h), registered through TensorFlow's C op and
// kernel API when the addon loads:
//
//   DescentLstm          (x [B, T, F], kernel [F, 4U], recurrent [U, 4U], bias [4U])
//                        → y [B, U] (the last step's h), workspace [T, B, W]
//   DescentLstmSequence  the same with y [B, T, U] (every step's h)
//   DescentLstmGrad      (x, kernel, recurrent, workspace, dy) → dx, dkernel, drecurrent, dbias
//
// The workspace is what the forward pass keeps for the backward pass (opaque: only the gradient
// op reads it). TensorFlow's op and kernel registries are process-wide, so the registration is too
// (once per process, whatever the number of times the addon is loaded).
#include "lstm_op.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lstm_kernel.h"
#include "tf_kernel_api.h"

namespace descent {
namespace {

struct StatusDeleter {
  void operator()(TF_Status* s) const { TF_DeleteStatus(s); }
};
struct TensorDeleter {
  void operator()(TF_Tensor* t) const { TF_DeleteTensor(t); }
};
struct ShapeDeleter {
  void operator()(TF_ShapeHandle* h) const { TF_DeleteShapeHandle(h); }
};
using StatusPtr = std::unique_ptr<TF_Status, StatusDeleter>;
using TensorPtr = std::unique_ptr<TF_Tensor, TensorDeleter>;
using ShapePtr = std::unique_ptr<TF_ShapeHandle, ShapeDeleter>;

constexpr int64_t Pad16(int64_t n) { return (n + 15) / 16 * 16; }
// Floats per (step, row) of the workspace (LstmDims::WorkspaceSize() / (T·B)).
constexpr int64_t WorkspaceWidth(int64_t features, int64_t units) {
  return features + Pad16(4 * units) + 2 * units;
}

// ---- shapes --------------------------------------------------------------------------------

// The value of dimension i of input `input`, or −1 when unknown.
int64_t InputDim(TF_ShapeInferenceContext* ctx, int input, int64_t i, TF_Status* status) {
  ShapePtr shape(TF_NewShapeHandle());
  TF_ShapeInferenceContextGetInput(ctx, input, shape.get(), status);
  if (TF_GetCode(status) != TF_OK || !TF_ShapeInferenceContextRankKnown(ctx, shape.get()) ||
      TF_ShapeInferenceContextRank(ctx, shape.get()) <= i)
    return -1;
  TF_DimensionHandle* dim = TF_NewDimensionHandle();
  TF_ShapeInferenceContextDim(ctx, shape.get(), i, dim);
  const int64_t value = TF_DimensionHandleValueKnown(dim) ? TF_DimensionHandleValue(dim) : -1;
  TF_DeleteDimensionHandle(dim);
  return value;
}

// Input `input`'s dimensions [start, end) followed by `more` (shapes of known rank).
ShapePtr Shape(TF_ShapeInferenceContext* ctx, int input, int64_t start, int64_t end,
               std::vector<ShapePtr> more, TF_Status* status) {
  ShapePtr in(TF_NewShapeHandle());
  TF_ShapeInferenceContextGetInput(ctx, input, in.get(), status);
  ShapePtr out(TF_NewShapeHandle());
  if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSubshape(ctx, in.get(), start, end, out.get(), status);
  for (ShapePtr& next : more) {
    if (TF_GetCode(status) != TF_OK) break;
    ShapePtr joined(TF_NewShapeHandle());
    TF_ShapeInferenceContextConcatenateShapes(ctx, out.get(), next.get(), joined.get(), status);
    out = std::move(joined);
  }
  return out;
}

// y: x's [B] or [B, T], then the recurrent kernel's [U]; workspace: [T, B, W].
template <bool kSequence>
void ForwardShapes(TF_ShapeInferenceContext* ctx, TF_Status* status) {
  const int64_t features = InputDim(ctx, 1, 0, status);
  const int64_t units = InputDim(ctx, 2, 0, status);
  if (TF_GetCode(status) != TF_OK || features < 0 || units < 0) {
    TF_SetStatus(status, TF_OK, "");
    TF_ShapeInferenceContextSetUnknownShape(ctx, status);
    return;
  }
  std::vector<ShapePtr> unit;
  unit.emplace_back(Shape(ctx, 2, 0, 1, {}, status));
  ShapePtr y = Shape(ctx, 0, 0, kSequence ? 2 : 1, std::move(unit), status);
  std::vector<ShapePtr> rest;
  rest.emplace_back(Shape(ctx, 0, 0, 1, {}, status));
  rest.emplace_back(TF_ShapeInferenceContextVectorFromSize(ctx, static_cast<size_t>(WorkspaceWidth(features, units))));
  ShapePtr workspace = Shape(ctx, 0, 1, 2, std::move(rest), status);
  if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSetOutput(ctx, 0, y.get(), status);
  if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSetOutput(ctx, 1, workspace.get(), status);
}

// The gradients have the shapes of x, kernel and recurrent; dbias is the kernel's [4U].
void GradShapes(TF_ShapeInferenceContext* ctx, TF_Status* status) {
  for (int i = 0; i < 3 && TF_GetCode(status) == TF_OK; i++) {
    ShapePtr s(TF_NewShapeHandle());
    TF_ShapeInferenceContextGetInput(ctx, i, s.get(), status);
    if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSetOutput(ctx, i, s.get(), status);
  }
  ShapePtr bias = Shape(ctx, 1, 1, 2, {}, status);
  if (TF_GetCode(status) == TF_OK) TF_ShapeInferenceContextSetOutput(ctx, 3, bias.get(), status);
}

// ---- kernels -------------------------------------------------------------------------------

// An op's run: inputs taken, outputs and temporaries allocated, the first error kept.
class Run {
 public:
  explicit Run(TF_OpKernelContext* ctx) : ctx_(ctx), status_(TF_NewStatus()) {}
  ~Run() {
    if (TF_GetCode(status_.get()) != TF_OK) TF_OpKernelContext_Failure(ctx_, status_.get());
  }
  bool ok() const { return TF_GetCode(status_.get()) == TF_OK; }
  void Fail(const std::string& message) {
    if (ok()) TF_SetStatus(status_.get(), TF_INVALID_ARGUMENT, message.c_str());
  }

  // Input i, which must be float32 of rank `rank` (−1: any); its dimensions in dims.
  const float* Input(int i, int rank, std::vector<int64_t>* dims, const char* what) {
    if (!ok()) return nullptr;
    TF_Tensor* t = nullptr;
    TF_GetInput(ctx_, i, &t, status_.get());
    if (!ok()) return nullptr;
    held_.emplace_back(t);
    if (TF_TensorType(t) != TF_FLOAT || (rank >= 0 && TF_NumDims(t) != rank)) {
      Fail(std::string(what) + " must be a float32 tensor of rank " + std::to_string(rank));
      return nullptr;
    }
    rank = TF_NumDims(t);
    dims->resize(static_cast<size_t>(rank));
    for (int d = 0; d < rank; d++) (*dims)[static_cast<size_t>(d)] = TF_Dim(t, d);
    return static_cast<const float*>(TF_TensorData(t));
  }

  float* Output(int i, std::vector<int64_t> dims) { return Allocate(&dims, i); }
  float* Temp(int64_t floats) {
    std::vector<int64_t> dims{floats};
    return Allocate(&dims, -1);
  }

 private:
  float* Allocate(std::vector<int64_t>* dims, int output) {
    if (!ok()) return nullptr;
    int64_t n = 1;
    for (int64_t d : *dims) n *= d;
    TF_Tensor* t = nullptr;
    if (output >= 0) {
      t = TF_AllocateOutput(ctx_, output, TF_FLOAT, dims->data(), static_cast<int>(dims->size()),
                            static_cast<size_t>(n) * sizeof(float), status_.get());
    } else {
      TF_AllocatorAttributes attrs{TF_ALLOCATOR_ATTRIBUTES_STRUCT_SIZE, 1};
      t = TF_AllocateTemp(ctx_, TF_FLOAT, dims->data(), static_cast<int>(dims->size()), &attrs, status_.get());
    }
    if (!ok()) return nullptr;
    held_.emplace_back(t);
    return static_cast<float*>(TF_TensorData(t));
  }

  TF_OpKernelContext* ctx_;
  StatusPtr status_;
  std::vector<TensorPtr> held_;
};

// x [B, T, F], kernel [F, 4U], recurrent [U, 4U]: the sizes, or a failure naming the mismatch.
bool Sizes(Run& run, const std::vector<int64_t>& x, const std::vector<int64_t>& kernel,
           const std::vector<int64_t>& recurrent, int64_t* units) {
  if (!run.ok()) return false;
  const int64_t u = recurrent[0];
  if (x[1] < 1 || kernel[0] != x[2] || kernel[1] != 4 * u || recurrent[1] != 4 * u) {
    run.Fail("DescentLstm: x [batch, steps ≥ 1, features], kernel [features, 4·units] and recurrent [units, 4·units] do not agree");
    return false;
  }
  *units = u;
  return true;
}

template <bool kSequence>
void ComputeForward(void*, TF_OpKernelContext* ctx) {
  Run run(ctx);
  std::vector<int64_t> xd, kd, rd, bd;
  const float* x = run.Input(0, 3, &xd, "x");
  const float* wx = run.Input(1, 2, &kd, "kernel");
  const float* wh = run.Input(2, 2, &rd, "recurrent");
  const float* bias = run.Input(3, 1, &bd, "bias");
  int64_t units = 0;
  if (!Sizes(run, xd, kd, rd, &units)) return;
  if (bd[0] != 4 * units) return run.Fail("DescentLstm: bias must be [4·units]");
  const LstmDims d(xd[0], xd[1], xd[2], units);
  float* y = kSequence ? run.Output(0, {d.B, d.T, d.U}) : run.Output(0, {d.B, d.U});
  float* workspace = run.Output(1, {d.T, d.B, WorkspaceWidth(d.F, d.U)});
  float* scratch = run.Temp(d.ForwardScratch());
  if (!run.ok() || d.B == 0) return;
  LstmForward(d, {x, wx, wh, bias, kSequence, y, workspace, scratch});
}

void ComputeGrad(void*, TF_OpKernelContext* ctx) {
  Run run(ctx);
  std::vector<int64_t> xd, kd, rd, wd, yd;
  run.Input(0, 3, &xd, "x");
  const float* wx = run.Input(1, 2, &kd, "kernel");
  const float* wh = run.Input(2, 2, &rd, "recurrent");
  const float* workspace = run.Input(3, 3, &wd, "workspace");
  int64_t units = 0;
  if (!Sizes(run, xd, kd, rd, &units)) return;
  const LstmDims d(xd[0], xd[1], xd[2], units);
  if (wd[0] != d.T || wd[1] != d.B || wd[2] != WorkspaceWidth(d.F, d.U))
    return run.Fail("DescentLstmGrad: the workspace is not the forward pass's of this x");
  // dy: [B, U] (the last step's h) or [B, T, U] (every step's).
  const float* dy = run.Input(4, -1, &yd, "dy");
  if (!run.ok()) return;
  const bool sequence = yd.size() == 3;
  const bool fits = sequence ? yd[0] == d.B && yd[1] == d.T && yd[2] == d.U
                             : yd.size() == 2 && yd[0] == d.B && yd[1] == d.U;
  if (!fits) return run.Fail("DescentLstmGrad: dy must be [batch, units] or [batch, steps, units]");
  float* dx = run.Output(0, {d.B, d.T, d.F});
  float* dwx = run.Output(1, {d.F, d.G});
  float* dwh = run.Output(2, {d.U, d.G});
  float* db = run.Output(3, {d.G});
  float* scratch = run.Temp(d.BackwardScratch());
  if (!run.ok()) return;
  if (d.B == 0) {
    std::fill(dwx, dwx + d.F * d.G, 0.0f);
    std::fill(dwh, dwh + d.U * d.G, 0.0f);
    std::fill(db, db + d.G, 0.0f);
    return;
  }
  LstmBackward(d, {wx, wh, workspace, dy, sequence, dx, dwx, dwh, db, scratch});
}

void* Create(TF_OpKernelConstruction*) { return nullptr; }
void Delete(void*) {}

// Registers one op and its CPU kernel; false with the reason in `error` when TensorFlow refuses.
bool Register(const char* name, const std::vector<const char*>& inputs, const std::vector<const char*>& outputs,
              void (*shapes)(TF_ShapeInferenceContext*, TF_Status*), void (*compute)(void*, TF_OpKernelContext*),
              std::string* error) {
  StatusPtr status(TF_NewStatus());
  TF_OpDefinitionBuilder* op = TF_NewOpDefinitionBuilder(name);
  for (const char* input : inputs) TF_OpDefinitionBuilderAddInput(op, input);
  for (const char* output : outputs) TF_OpDefinitionBuilderAddOutput(op, output);
  TF_OpDefinitionBuilderSetShapeInferenceFunction(op, shapes);
  TF_RegisterOpDefinition(op, status.get());
  if (TF_GetCode(status.get()) == TF_OK) {
    TF_KernelBuilder* kernel = TF_NewKernelBuilder(name, "CPU", Create, compute, Delete);
    TF_RegisterKernelBuilder((std::string(name) + "Cpu").c_str(), kernel, status.get());
  }
  if (TF_GetCode(status.get()) == TF_OK) return true;
  *error = std::string(name) + ": " + TF_Message(status.get());
  return false;
}

std::string RegisterAll() {
  std::string error;
  const std::vector<const char*> in = {"x: float", "kernel: float", "recurrent: float", "bias: float"};
  const std::vector<const char*> out = {"y: float", "workspace: float"};
  if (!Register("DescentLstm", in, out, ForwardShapes<false>, ComputeForward<false>, &error) ||
      !Register("DescentLstmSequence", in, out, ForwardShapes<true>, ComputeForward<true>, &error) ||
      !Register("DescentLstmGrad", {"x: float", "kernel: float", "recurrent: float", "workspace: float", "dy: float"},
                {"dx: float", "dkernel: float", "drecurrent: float", "dbias: float"}, GradShapes, ComputeGrad,
                &error))
    return error;
  return "";
}

}  // namespace

std::string RegisterLstmOps() {
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] { error = RegisterAll(); });
  return error;
}

}  // namespace descent
