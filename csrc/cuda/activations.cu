// Activations and their derivatives: the fused forward epilogue z += b, h = act(z) (and out = x + h for
// a one-weight residual block), and the reverse-pass product g * act'(z) on stacked seeds.
#include "cuda_check.hpp"
#include "device_math.cuh"

namespace sensinet::cuda::kern {

template <class T>
__global__ void bias_activate_kernel(T* z, const T* b, T* h, i64 rows, i64 cols, int act, T alpha,
                                     const T* residual, T* out) {
  const i64 n = rows * cols;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const T zi = z[i] + b[i % cols];
    z[i] = zi;
    const T hi = dev::activate(act, alpha, zi);
    h[i] = hi;
    if (residual) out[i] = residual[i] + hi;
  }
}

template <class T>
void bias_activate(cudaStream_t s, T* z, const T* b, T* h, i64 rows, i64 cols, int act, T alpha, const T* residual,
                   T* out) {
  const i64 n = rows * cols;
  if (n == 0) return;
  bias_activate_kernel<T><<<dev::grid_for(n), 256, 0, s>>>(z, b, h, rows, cols, act, alpha, residual, out);
  SENSINET_CUDA_CHECK_LAUNCH("bias_activate");
}

template <class T>
__global__ void mul_derivative_kernel(int act, T alpha, const T* z, const T* h, const T* g_in, T* g_out, i64 count_g,
                                      i64 count_z) {
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count_g; i += (i64)gridDim.x * blockDim.x) {
    const i64 j = count_g == count_z ? i : i % count_z;
    g_out[i] = dev::derivative_times(act, alpha, z[j], h[j], g_in[i]);
  }
}

template <class T>
void mul_derivative(cudaStream_t s, int act, T alpha, const T* z, const T* h, const T* g_in, T* g_out, i64 count_g,
                    i64 count_z) {
  if (count_g == 0) return;
  if (act == kIdentity) {
    if (g_out != g_in)
      SENSINET_CUDA_CHECK(cudaMemcpyAsync(g_out, g_in, sizeof(T) * count_g, cudaMemcpyDeviceToDevice, s));
    return;
  }
  mul_derivative_kernel<T><<<dev::grid_for(count_g), 256, 0, s>>>(act, alpha, z, h, g_in, g_out, count_g, count_z);
  SENSINET_CUDA_CHECK_LAUNCH("mul_derivative");
}

#define SENSINET_INSTANTIATE(T)                                                                                 \
  template void bias_activate<T>(cudaStream_t, T*, const T*, T*, i64, i64, int, T, const T*, T*);              \
  template void mul_derivative<T>(cudaStream_t, int, T, const T*, const T*, const T*, T*, i64, i64);
SENSINET_INSTANTIATE(float)
SENSINET_INSTANTIATE(double)
#undef SENSINET_INSTANTIATE

}  // namespace sensinet::cuda::kern
