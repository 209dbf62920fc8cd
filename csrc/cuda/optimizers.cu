// Optimizer steps with the conventions of sensinet::optimizer_step (PyTorch's): SGD (plain, momentum
// buffer initialised with the first gradient, Nesterov) and Adam with bias corrections, eps added after
// the corrected square root. The step count and bias corrections come from the device-side StepControl,
// and a step whose loss was not finite leaves everything untouched.
#include "cuda_check.hpp"
#include "device_math.cuh"

namespace sensinet::cuda::kern {

namespace {

__global__ void init_control_kernel(StepControl* ctl, i64 t0) {
  ctl->row_offset = 0;
  ctl->epoch_step = 0;
  ctl->steps = 0;
  ctl->diverged_at = -1;
  ctl->t = t0;
  ctl->bc1 = 1.0;
  ctl->bc2s = 1.0;
  ctl->first_momentum = 0;
  ctl->skip = 0;
}

__global__ void begin_epoch_kernel(StepControl* ctl) {
  ctl->row_offset = 0;
  ctl->epoch_step = 0;
}

template <class T>
__global__ void sgd_kernel(const T* cur, const T* g, T* nxt, T* buf, i64 len, T lr, T mu, bool nesterov,
                           const StepControl* ctl) {
  if (ctl->skip) return;
  const bool first = ctl->first_momentum != 0;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < len; i += (i64)gridDim.x * blockDim.x) {
    const T gi = g[i];
    if (mu == T(0)) {
      nxt[i] = cur[i] - lr * gi;
      continue;
    }
    const T b = first ? gi : mu * buf[i] + gi;
    buf[i] = b;
    nxt[i] = nesterov ? cur[i] - lr * (gi + mu * b) : cur[i] - lr * b;
  }
}

template <class T>
__global__ void adam_kernel(const T* cur, const T* g, T* nxt, T* m, T* v, i64 len, T lr, T b1, T b2, T eps,
                            const StepControl* ctl) {
  if (ctl->skip) return;
  const T bc1 = static_cast<T>(ctl->bc1), bc2s = static_cast<T>(ctl->bc2s);
  const T step = lr / bc1;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < len; i += (i64)gridDim.x * blockDim.x) {
    const T gi = g[i];
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    nxt[i] = cur[i] - step * mi / (dev::d_sqrt(vi) / bc2s + eps);
  }
}

template <class T>
__global__ void swap_kernel(T* a, T* b, i64 n) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const T t = a[i];
    a[i] = b[i];
    b[i] = t;
  }
}

}  // namespace

void init_control(cudaStream_t s, StepControl* ctl, i64 t0) {
  init_control_kernel<<<1, 1, 0, s>>>(ctl, t0);
  SENSINET_CUDA_CHECK_LAUNCH("init_control");
}

void begin_epoch(cudaStream_t s, StepControl* ctl) {
  begin_epoch_kernel<<<1, 1, 0, s>>>(ctl);
  SENSINET_CUDA_CHECK_LAUNCH("begin_epoch");
}

template <class T>
void sgd_step(cudaStream_t s, const T* cur, const T* g, T* nxt, T* buf, i64 len, T lr, T momentum, bool nesterov,
              const StepControl* ctl) {
  if (len == 0) return;
  sgd_kernel<T><<<dev::grid_for(len), 256, 0, s>>>(cur, g, nxt, buf, len, lr, momentum, nesterov, ctl);
  SENSINET_CUDA_CHECK_LAUNCH("sgd_step");
}

template <class T>
void adam_step(cudaStream_t s, const T* cur, const T* g, T* nxt, T* m, T* v, i64 len, T lr, T beta1, T beta2, T eps,
               const StepControl* ctl) {
  if (len == 0) return;
  adam_kernel<T><<<dev::grid_for(len), 256, 0, s>>>(cur, g, nxt, m, v, len, lr, beta1, beta2, eps, ctl);
  SENSINET_CUDA_CHECK_LAUNCH("adam_step");
}

template <class T>
void swap_ranges(cudaStream_t s, T* a, T* b, i64 n) {
  if (n == 0) return;
  swap_kernel<T><<<dev::grid_for(n), 256, 0, s>>>(a, b, n);
  SENSINET_CUDA_CHECK_LAUNCH("swap_ranges");
}

#define SENSINET_INSTANTIATE(T)                                                                         \
  template void sgd_step<T>(cudaStream_t, const T*, const T*, T*, T*, i64, T, T, bool, const StepControl*); \
  template void adam_step<T>(cudaStream_t, const T*, const T*, T*, T*, T*, i64, T, T, T, T,           \
                             const StepControl*);                                                      \
  template void swap_ranges<T>(cudaStream_t, T*, T*, i64);
SENSINET_INSTANTIATE(float)
SENSINET_INSTANTIATE(double)
#undef SENSINET_INSTANTIATE

}  // namespace sensinet::cuda::kern
