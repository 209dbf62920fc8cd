// Heads: per-sample losses and dJ/d(out) of linear + MSE, softmax + cross-entropy and sigmoid + binary
// cross-entropy (one warp per row), the output links, output seeds for the sensitivity sweep, the L2
// terms, and the fixed-order reduction that turns row losses into the batch objective (and, in a
// training step, advances the step bookkeeping on the device).
#include <cmath>

#include "cuda_check.hpp"
#include "device_math.cuh"

namespace sensinet::cuda::kern {

namespace {

constexpr int kWarpsPerBlock = 8;

unsigned row_blocks(i64 rows) {
  return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

template <class T>
__global__ void head_kernel(int loss, const T* out, const T* y, i64 rows, i64 k, T inv_n, T* dout, double* rowloss) {
  const i64 row = (blockIdx.x * (i64)blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;  // the whole warp leaves together
  const T* o = out + row * k;
  const T* yr = y + row * k;
  T* d = dout + row * k;
  double acc = 0.0;
  if (loss == kMSE) {
    const T scale = T(2) * (inv_n / T(k));
    for (i64 c = lane; c < k; c += 32) {
      const T diff = o[c] - yr[c];
      acc += static_cast<double>(diff) * static_cast<double>(diff);
      d[c] = diff * scale;
    }
    acc = dev::warp_sum(acc);
  } else if (loss == kCrossEntropy) {
    T mx = static_cast<T>(-INFINITY);
    for (i64 c = lane; c < k; c += 32) mx = o[c] > mx ? o[c] : mx;
    mx = dev::warp_max(mx);
    T z = T(0), ysum = T(0);
    for (i64 c = lane; c < k; c += 32) {
      z += dev::d_exp(o[c] - mx);
      ysum += yr[c];
    }
    z = dev::warp_sum(z);
    ysum = dev::warp_sum(ysum);
    const T lse = mx + dev::d_log(z);
    const T ratio = ysum / z;
    T part = T(0);
    for (i64 c = lane; c < k; c += 32) {
      part += yr[c] * (lse - o[c]);
      d[c] = (ratio * dev::d_exp(o[c] - mx) - yr[c]) * inv_n;
    }
    acc = static_cast<double>(dev::warp_sum(part));
  } else {
    T part = T(0);
    for (i64 c = lane; c < k; c += 32) {
      const T zc = o[c];
      const T sp = (zc > T(0) ? zc : T(0)) + dev::d_log1p(dev::d_exp(-dev::d_abs(zc)));
      part += sp - yr[c] * zc;
      d[c] = (T(1) / (T(1) + dev::d_exp(-zc)) - yr[c]) * inv_n;
    }
    acc = static_cast<double>(dev::warp_sum(part));
  }
  if (lane == 0) rowloss[row] = acc;
}

template <class T>
__global__ void link_kernel(int loss, T* out, i64 rows, i64 k) {
  if (loss == kBinaryCrossEntropy) {
    const i64 n = rows * k;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
      out[i] = T(1) / (T(1) + dev::d_exp(-out[i]));
    return;
  }
  const i64 row = (blockIdx.x * (i64)blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  T* o = out + row * k;
  T mx = static_cast<T>(-INFINITY);
  for (i64 c = lane; c < k; c += 32) mx = o[c] > mx ? o[c] : mx;
  mx = dev::warp_max(mx);
  T z = T(0);
  for (i64 c = lane; c < k; c += 32) {
    const T e = dev::d_exp(o[c] - mx);
    o[c] = e;
    z += e;
  }
  z = dev::warp_sum(z);
  for (i64 c = lane; c < k; c += 32) o[c] /= z;
}

template <class T>
__global__ void seed_kernel(T* G, i64 m, i64 K) {
  const i64 n = K * m * K;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 row = i / K, c = i % K;
    G[i] = (row / m == c) ? T(1) : T(0);
  }
}

template <class T>
__global__ void l2_kernel(const T* w, i64 n, T lam, T* grad, double* partial) {
  __shared__ double sh[32];
  double acc = 0.0;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const T wi = w[i];
    acc += static_cast<double>(wi) * static_cast<double>(wi);
    if (grad) grad[i] += lam * wi;
  }
  acc = dev::block_sum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = 0.5 * static_cast<double>(lam) * acc;
}

template <class T>
__global__ void finalize_kernel(const double* rowloss, i64 rows, double scale, const double* reg, i64 n_reg,
                                double* out, StepControl* ctl, double* losses, StepOpt opt) {
  __shared__ double sh[32];
  double a = 0.0, r = 0.0;
  for (i64 i = threadIdx.x; i < rows; i += blockDim.x) a += rowloss[i];
  a = dev::block_sum(a, sh);
  for (i64 i = threadIdx.x; i < n_reg; i += blockDim.x) r += reg[i];
  r = dev::block_sum(r, sh);
  if (threadIdx.x != 0) return;
  const T loss = static_cast<T>(a * scale) + static_cast<T>(r);
  if (!ctl) {
    *out = static_cast<double>(loss);
    return;
  }
  losses[ctl->epoch_step] = static_cast<double>(loss);
  if (!dev::d_isfinite(loss) && ctl->diverged_at < 0) ctl->diverged_at = ctl->steps;
  ctl->skip = ctl->diverged_at >= 0 ? 1 : 0;
  if (!ctl->skip && opt.counts_steps) {
    ctl->first_momentum = ctl->t == 0 ? 1 : 0;
    ctl->t += 1;
    if (opt.adam) {
      const T tt = static_cast<T>(ctl->t);
      ctl->bc1 = static_cast<double>(T(1) - dev::d_pow(static_cast<T>(opt.beta1), tt));
      ctl->bc2s = static_cast<double>(dev::d_sqrt(T(1) - dev::d_pow(static_cast<T>(opt.beta2), tt)));
    }
  }
  ctl->row_offset += opt.batch;
  ctl->epoch_step += 1;
  ctl->steps += 1;
}

}  // namespace

template <class T>
void head_loss(cudaStream_t s, int loss, const T* out, const T* y, i64 rows, i64 k, T inv_n, T* dout,
               double* rowloss) {
  if (rows == 0) return;
  head_kernel<T><<<row_blocks(rows), 32 * kWarpsPerBlock, 0, s>>>(loss, out, y, rows, k, inv_n, dout, rowloss);
  SENSINET_CUDA_CHECK_LAUNCH("head_loss");
}

template <class T>
double head_scale(int loss, i64 k, T inv_n) {
  // The CPU head multiplies the summed squared error by s = inv_n / k (in T); the others by inv_n.
  return loss == kMSE ? static_cast<double>(inv_n / T(k)) : static_cast<double>(inv_n);
}

template <class T>
void apply_link(cudaStream_t s, int loss, T* out, i64 rows, i64 k) {
  if (loss == kMSE || rows == 0) return;
  if (loss == kBinaryCrossEntropy)
    link_kernel<T><<<dev::grid_for(rows * k), 256, 0, s>>>(loss, out, rows, k);
  else
    link_kernel<T><<<row_blocks(rows), 32 * kWarpsPerBlock, 0, s>>>(loss, out, rows, k);
  SENSINET_CUDA_CHECK_LAUNCH("apply_link");
}

template <class T>
void seed_outputs(cudaStream_t s, T* G, i64 m, i64 K) {
  seed_kernel<T><<<dev::grid_for(K * m * K), 256, 0, s>>>(G, m, K);
  SENSINET_CUDA_CHECK_LAUNCH("seed_outputs");
}

template <class T>
void l2_terms(cudaStream_t s, const T* w, i64 n, T lam, T* grad, double* partial) {
  l2_kernel<T><<<kL2Blocks, 256, 0, s>>>(w, n, lam, grad, partial);
  SENSINET_CUDA_CHECK_LAUNCH("l2_terms");
}

template <class T>
void finalize_loss(cudaStream_t s, const double* rowloss, i64 rows, double scale, const double* reg, i64 n_reg,
                   double* out, StepControl* ctl, double* losses, StepOpt opt) {
  finalize_kernel<T><<<1, 1024, 0, s>>>(rowloss, rows, scale, reg, n_reg, out, ctl, losses, opt);
  SENSINET_CUDA_CHECK_LAUNCH("finalize_loss");
}

#define SENSINET_INSTANTIATE(T)                                                                             \
  template void head_loss<T>(cudaStream_t, int, const T*, const T*, i64, i64, T, T*, double*);             \
  template double head_scale<T>(int, i64, T);                                                              \
  template void apply_link<T>(cudaStream_t, int, T*, i64, i64);                                            \
  template void seed_outputs<T>(cudaStream_t, T*, i64, i64);                                               \
  template void l2_terms<T>(cudaStream_t, const T*, i64, T, T*, double*);                                  \
  template void finalize_loss<T>(cudaStream_t, const double*, i64, double, const double*, i64, double*,    \
                                 StepControl*, double*, StepOpt);
SENSINET_INSTANTIATE(float)
SENSINET_INSTANTIATE(double)
#undef SENSINET_INSTANTIATE

}  // namespace sensinet::cuda::kern
