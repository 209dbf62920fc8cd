// Device helpers shared by the kernels: scalar math for float and double, warp and block reductions,
// launch sizes. No fast-math: every function is the accurate CUDA one.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

#include "kernels.hpp"

namespace sensinet::cuda::dev {

template <class T>
__device__ __forceinline__ T d_exp(T x) {
  if constexpr (std::is_same_v<T, float>) return expf(x); else return exp(x);
}
template <class T>
__device__ __forceinline__ T d_log(T x) {
  if constexpr (std::is_same_v<T, float>) return logf(x); else return log(x);
}
template <class T>
__device__ __forceinline__ T d_log1p(T x) {
  if constexpr (std::is_same_v<T, float>) return log1pf(x); else return log1p(x);
}
template <class T>
__device__ __forceinline__ T d_tanh(T x) {
  if constexpr (std::is_same_v<T, float>) return tanhf(x); else return tanh(x);
}
template <class T>
__device__ __forceinline__ T d_sqrt(T x) {
  if constexpr (std::is_same_v<T, float>) return sqrtf(x); else return sqrt(x);
}
template <class T>
__device__ __forceinline__ T d_pow(T x, T y) {
  if constexpr (std::is_same_v<T, float>) return powf(x, y); else return pow(x, y);
}
template <class T>
__device__ __forceinline__ T d_abs(T x) {
  if constexpr (std::is_same_v<T, float>) return fabsf(x); else return fabs(x);
}
template <class T>
__device__ __forceinline__ bool d_isfinite(T x) {
  return isfinite(x);
}

// act(z), as sensinet::activate.
template <class T>
__device__ __forceinline__ T activate(int act, T alpha, T z) {
  switch (act) {
    case kRelu: return z > T(0) ? z : T(0);
    case kLeakyRelu: return z > T(0) ? z : alpha * z;
    case kTanh: return d_tanh(z);
    case kSigmoid: return T(1) / (T(1) + d_exp(-z));
    case kSoftplus: return (z > T(0) ? z : T(0)) + d_log1p(d_exp(-d_abs(z)));
    default: return z;
  }
}

// g * act'(z) given h = act(z), as sensinet::multiply_derivative.
template <class T>
__device__ __forceinline__ T derivative_times(int act, T alpha, T z, T h, T g) {
  switch (act) {
    case kRelu: return z > T(0) ? g : T(0);
    case kLeakyRelu: return z > T(0) ? g : alpha * g;
    case kTanh: return g * (T(1) - h * h);
    case kSigmoid: return g * (h * (T(1) - h));
    case kSoftplus: return g * (T(1) / (T(1) + d_exp(-z)));
    default: return g;
  }
}

template <class V>
__device__ __forceinline__ V warp_sum(V v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class V>
__device__ __forceinline__ V warp_max(V v) {
  for (int o = 16; o > 0; o >>= 1) {
    const V w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024) in a fixed order; the result is valid in
// thread 0. `shared` holds 32 values.
__device__ __forceinline__ double block_sum(double v, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int n_warps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < n_warps ? shared[threadIdx.x] : 0.0;
  if (warp == 0) v = warp_sum(v);
  __syncthreads();
  return v;
}

// Blocks for a grid-stride loop over n elements.
inline unsigned grid_for(i64 n, int threads = 256) {
  i64 b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 32) b = 65535LL * 32;
  return static_cast<unsigned>(b);
}

}  // namespace sensinet::cuda::dev
