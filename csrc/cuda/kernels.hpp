// Launchers of the device kernels (one .cu file per family), explicitly instantiated for float and
// double. All work is queued on the caller's stream; nothing here synchronizes.
#pragma once
#include <cuda_runtime.h>

#include "sensinet/config.hpp"

namespace sensinet::cuda {

using i64 = Index;

// Activation, loss and reduction codes of the kernels: the integer values of the engine's enums
// (sensinet/config.hpp), so the two cannot drift apart.
enum ActCode : int {
  kIdentity = int(Activation::Identity),
  kRelu = int(Activation::Relu),
  kLeakyRelu = int(Activation::LeakyRelu),
  kTanh = int(Activation::Tanh),
  kSigmoid = int(Activation::Sigmoid),
  kSoftplus = int(Activation::Softplus)
};
enum LossCode : int {
  kMSE = int(Loss::MSE),
  kCrossEntropy = int(Loss::CrossEntropy),
  kBinaryCrossEntropy = int(Loss::BinaryCrossEntropy)
};
enum ReduceCode : int { kMeanAbs = int(Reduce::MeanAbs), kRMS = int(Reduce::RMS), kMean = int(Reduce::Mean) };

// Bookkeeping of a training call, in device memory, so that a step is the same sequence of launches
// every time (and can be replayed as a CUDA graph): the minibatch offset, the optimizer's step count
// and the divergence flag are read and advanced on the device.
struct StepControl {
  i64 row_offset;   // first position (in this epoch's permutation) of the next minibatch
  i64 epoch_step;   // steps launched in this epoch (index into the per-epoch loss array)
  i64 steps;        // steps launched in this call
  i64 diverged_at;  // -1, or the call-relative step whose loss was not finite
  i64 t;            // optimizer step count (OptState::t)
  double bc1, bc2s; // Adam bias corrections of the step being applied (values of type T)
  int first_momentum;  // 1: the momentum buffer is initialised with the gradient (t was 0)
  int skip;            // 1: the optimizer leaves the weights alone (a loss was not finite)
};

namespace kern {

constexpr int kL2Blocks = 64;      // partial sums per weight matrix of the L2 term
constexpr int kMaxSlabs = 64;      // row slabs of a column reduction

// ---- activations.cu
// z += b (broadcast over rows); h = act(z); with `residual`: out = residual + h.
template <class T>
void bias_activate(cudaStream_t s, T* z, const T* b, T* h, i64 rows, i64 cols, int act, T alpha, const T* residual,
                   T* out);
// g_out = g_in * act'(z), where g stacks count_g / count_z copies of the cached rows (g_out may be g_in).
template <class T>
void mul_derivative(cudaStream_t s, int act, T alpha, const T* z, const T* h, const T* g_in, T* g_out, i64 count_g,
                    i64 count_z);

// ---- bias_colsum.cu
// Row slabs used by the column reductions for a (rows x cols) matrix in `groups` stacked blocks.
i64 colsum_slabs(i64 rows, i64 cols, i64 groups);
// out[j] (=|+=) sum_i g[i, j]: the bias gradient. `partial` holds colsum_slabs(rows, cols, 1) * cols doubles.
template <class T>
void colsum(cudaStream_t s, const T* g, i64 rows, i64 cols, T* out, bool accumulate, double* partial);
// acc[k, j] += sum_n f(g[k*rows + n, j] * v[n, j]), f = |.|, (.)^2 or identity: reduced sensitivities of
// K stacked output seeds. `partial`: colsum_slabs(rows, cols, K) * K * cols doubles.
template <class T>
void sensitivity_reduce(cudaStream_t s, const T* g, const T* v, i64 rows, i64 cols, i64 K, int reduce, double* acc,
                        double* partial);

// ---- heads.cu
// Per-sample loss sums into rowloss[rows] (before the 1/N scale) and dJ/d(out) into dout, as
// sensinet::loss_and_dout with inv_n. The batch loss is sum(rowloss) * head_scale(loss, k, inv_n).
template <class T>
void head_loss(cudaStream_t s, int loss, const T* out, const T* y, i64 rows, i64 k, T inv_n, T* dout,
               double* rowloss);
template <class T>
double head_scale(int loss, i64 k, T inv_n);
// Softmax rows (cross_entropy) or sigmoid (binary_cross_entropy) in place; nothing for mse.
template <class T>
void apply_link(cudaStream_t s, int loss, T* out, i64 rows, i64 k);
// G (K*m x K): block k has ones in column k (one output seed per block).
template <class T>
void seed_outputs(cudaStream_t s, T* G, i64 m, i64 K);
// partial[b] = 0.5 * lam * (part of sum w^2) for b < kL2Blocks; with grad: grad += lam * w.
template <class T>
void l2_terms(cudaStream_t s, const T* w, i64 n, T lam, T* grad, double* partial);
// loss = T(sum(rowloss) * scale) + T(sum(reg)) (both sums in a fixed order). Without ctl: *out = loss.
// With ctl (a training step): losses[ctl->epoch_step] = loss, divergence flag, optimizer step count and
// Adam bias corrections (beta1, beta2), then the minibatch offset advances by `batch`.
struct StepOpt {
  int counts_steps = 0;  // Adam, or SGD with momentum: the step count t advances
  int adam = 0;
  double beta1 = 0.9, beta2 = 0.999;
  i64 batch = 0;
};
template <class T>
void finalize_loss(cudaStream_t s, const double* rowloss, i64 rows, double scale, const double* reg, i64 n_reg,
                   double* out, StepControl* ctl, double* losses, StepOpt opt);

// ---- optimizers.cu
void init_control(cudaStream_t s, StepControl* ctl, i64 t0);
void begin_epoch(cudaStream_t s, StepControl* ctl);
// nxt = cur - lr * step over `len` values (pointers already at the block's offset), as optimizer_step.
template <class T>
void sgd_step(cudaStream_t s, const T* cur, const T* g, T* nxt, T* buf, i64 len, T lr, T momentum, bool nesterov,
              const StepControl* ctl);
template <class T>
void adam_step(cudaStream_t s, const T* cur, const T* g, T* nxt, T* m, T* v, i64 len, T lr, T beta1, T beta2, T eps,
               const StepControl* ctl);
template <class T>
void swap_ranges(cudaStream_t s, T* a, T* b, i64 n);

// ---- gather.cu
// Minibatch rows: xb[i] = x[idx[off + i]], yb[i] = y[idx[off + i]] for i < m, off = ctl->row_offset.
template <class T>
void gather_rows(cudaStream_t s, const T* x, i64 dx, const T* y, i64 dy, const i64* idx, const StepControl* ctl,
                 i64 m, T* xb, T* yb);

// Sets bit bit0 + j of row r's packed words (n_words per row, zeroed by the caller) where z[r, j] > 0, for a
// rows x width pre-activation block (patterns.cu).
template <class T>
void pack_bits(cudaStream_t s, const T* z, i64 rows, i64 width, i64 bit0, unsigned long long* out, i64 n_words);

}  // namespace kern
}  // namespace sensinet::cuda
