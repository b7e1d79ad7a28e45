// The fused LSTM's passes compiled three times (AVX-512, AVX2 with FMA, and portable code: 128-bit vectors) from
// lstm_math.inc, and the one this CPU supports chosen at run time: the addon is built where
// setup:native runs, and may run on another machine (a container image).
#include "lstm_kernel.h"

#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace descent {

namespace {
constexpr int64_t Pad16(int64_t n) { return (n + 15) / 16 * 16; }
}  // namespace

LstmDims::LstmDims(int64_t batch, int64_t steps, int64_t features, int64_t units)
    : B(batch), T(steps), F(features), U(units), G(4 * units), Gp(Pad16(4 * units)), Up(Pad16(units)),
      Fp(Pad16(features)) {}

int64_t LstmDims::WorkspaceSize() const { return T * B * (F + Gp + 2 * U); }
int64_t LstmDims::ForwardScratch() const { return (F + U) * Gp; }
int64_t LstmDims::BackwardScratch() const {
  return G * Up + G * Fp + T * B * Gp + B * Up + B * U + T * B * Fp + (F > U ? F : U) * Gp + Gp;
}

LstmWorkspace LstmDims::Split(float* workspace) const {
  Workspace w;
  w.x = workspace;
  w.gates = w.x + T * B * F;
  w.c = w.gates + T * B * Gp;
  w.h = w.c + T * B * U;
  return w;
}

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
namespace avx512 {
#define VLEN 16
#define MR_WIDE 6
#define MR_NARROW 12
#include "lstm_math.inc"
#undef VLEN
#undef MR_WIDE
#undef MR_NARROW
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#define VLEN 8
#define MR_WIDE 3
#define MR_NARROW 6
#include "lstm_math.inc"
#undef VLEN
#undef MR_WIDE
#undef MR_NARROW
}  // namespace avx2
#pragma GCC pop_options
#endif

namespace portable {
#define VLEN 4
#define MR_WIDE 2
#define MR_NARROW 4
#include "lstm_math.inc"
#undef VLEN
#undef MR_WIDE
#undef MR_NARROW
}  // namespace portable

namespace {
enum class Isa { kAvx512, kAvx2, kPortable };

// The best instruction set this CPU has.
Isa Best() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kPortable;
}

// The best, or a lesser one named by DESCENT_LSTM_ISA ("avx2", "portable"): so that the tests run
// every variant on one machine. A name the CPU cannot run, or an unknown one, changes nothing.
Isa Detect() {
  const Isa best = Best();
  const char* wanted = std::getenv("DESCENT_LSTM_ISA");
  if (wanted == nullptr) return best;
  if (std::strcmp(wanted, "portable") == 0) return Isa::kPortable;
  if (std::strcmp(wanted, "avx2") == 0 && best == Isa::kAvx512) return Isa::kAvx2;
  return best;
}

Isa Chosen() {
  static const Isa isa = Detect();  // the CPU does not change while the process runs
  return isa;
}
}  // namespace

const char* LstmIsa() {
  switch (Chosen()) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "portable";
  }
}

void LstmForward(const LstmDims& d, const LstmForwardArgs& args) {
  switch (Chosen()) {
#if defined(__x86_64__)
    case Isa::kAvx512:
      return avx512::Forward(d, args);
    case Isa::kAvx2:
      return avx2::Forward(d, args);
#endif
    default:
      return portable::Forward(d, args);
  }
}

void LstmBackward(const LstmDims& d, const LstmBackwardArgs& args) {
  switch (Chosen()) {
#if defined(__x86_64__)
    case Isa::kAvx512:
      return avx512::Backward(d, args);
    case Isa::kAvx2:
      return avx2::Backward(d, args);
#endif
    default:
      return portable::Backward(d, args);
  }
}

}  // namespace descent
