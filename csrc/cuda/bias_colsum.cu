// Column reductions: the bias gradient (sum over the rows of dJ/dz) and the reduced neuron
// sensitivities (sum over samples of |g v|, (g v)^2 or g v per output seed). Deterministic: each
// column is summed over fixed row slabs in a fixed order (no atomics), with double accumulators.
#include <algorithm>

#include "cuda_check.hpp"
#include "device_math.cuh"

namespace sensinet::cuda::kern {

namespace {

constexpr int kCols = 32;  // columns per block (one warp wide)
constexpr int kRows = 8;   // row threads per block

// f(p) of the sensitivity reduction; mode -1: a plain column sum.
template <class T>
__device__ __forceinline__ T reduce_term(int mode, T p) {
  switch (mode) {
    case kMeanAbs: return dev::d_abs(p);
    case kRMS: return p * p;
    default: return p;
  }
}

template <class OutT>
__device__ __forceinline__ void store(OutT* out, i64 at, double t, bool accumulate) {
  out[at] = accumulate ? static_cast<OutT>(out[at] + static_cast<OutT>(t)) : static_cast<OutT>(t);
}

// grid (ceil(cols/32), S, K), block (32, 8). Slab s of group k sums rows [s*per, (s+1)*per).
template <class T, class OutT>
__global__ void colreduce_kernel(const T* g, const T* v, i64 rows, i64 cols, i64 per, int mode, double* partial,
                                 OutT* out, bool accumulate) {
  __shared__ double sh[kRows][kCols + 1];
  const i64 j = (i64)blockIdx.x * kCols + threadIdx.x;
  const i64 s = blockIdx.y, k = blockIdx.z, S = gridDim.y;
  double acc = 0.0;
  if (j < cols) {
    const i64 r0 = s * per;
    const i64 r1 = r0 + per < rows ? r0 + per : rows;
    const T* gk = g + k * rows * cols;
    for (i64 r = r0 + threadIdx.y; r < r1; r += kRows) {
      T p = gk[r * cols + j];
      if (v) p = p * v[r * cols + j];
      acc += static_cast<double>(reduce_term(mode, p));
    }
  }
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    double t = 0.0;
    for (int q = 0; q < kRows; ++q) t += sh[q][threadIdx.x];
    if (S == 1)
      store(out, k * cols + j, t, accumulate);
    else
      partial[(k * S + s) * cols + j] = t;
  }
}

template <class OutT>
__global__ void colreduce_finish_kernel(const double* partial, i64 S, i64 K, i64 cols, OutT* out, bool accumulate) {
  const i64 n = K * cols;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 k = i / cols, j = i % cols;
    double t = 0.0;
    for (i64 s = 0; s < S; ++s) t += partial[(k * S + s) * cols + j];
    store(out, i, t, accumulate);
  }
}

template <class T, class OutT>
void colreduce(cudaStream_t st, const T* g, const T* v, i64 rows, i64 cols, i64 K, int mode, OutT* out,
               bool accumulate, double* partial) {
  if (rows == 0 || cols == 0 || K == 0) return;
  const i64 S = colsum_slabs(rows, cols, K);
  const i64 per = (rows + S - 1) / S;
  const dim3 grid(static_cast<unsigned>((cols + kCols - 1) / kCols), static_cast<unsigned>(S),
                  static_cast<unsigned>(K));
  colreduce_kernel<T, OutT><<<grid, dim3(kCols, kRows), 0, st>>>(g, v, rows, cols, per, mode, partial, out,
                                                                 accumulate);
  SENSINET_CUDA_CHECK_LAUNCH("colreduce");
  if (S > 1) {
    colreduce_finish_kernel<OutT><<<dev::grid_for(K * cols), 256, 0, st>>>(partial, S, K, cols, out, accumulate);
    SENSINET_CUDA_CHECK_LAUNCH("colreduce_finish");
  }
}

}  // namespace

i64 colsum_slabs(i64 rows, i64 cols, i64 groups) {
  // Enough blocks to fill the device (~256), slabs of at least 32 rows, at most kMaxSlabs.
  const i64 col_blocks = std::max<i64>(1, ((cols + kCols - 1) / kCols) * std::max<i64>(groups, 1));
  i64 S = std::max<i64>(1, 256 / col_blocks);
  S = std::min<i64>(S, std::max<i64>(1, rows / 32));
  return std::min<i64>(S, kMaxSlabs);
}

template <class T>
void colsum(cudaStream_t s, const T* g, i64 rows, i64 cols, T* out, bool accumulate, double* partial) {
  colreduce<T, T>(s, g, static_cast<const T*>(nullptr), rows, cols, 1, -1, out, accumulate, partial);
}

template <class T>
void sensitivity_reduce(cudaStream_t s, const T* g, const T* v, i64 rows, i64 cols, i64 K, int reduce, double* acc,
                        double* partial) {
  colreduce<T, double>(s, g, v, rows, cols, K, reduce, acc, true, partial);
}

#define SENSINET_INSTANTIATE(T)                                                                \
  template void colsum<T>(cudaStream_t, const T*, i64, i64, T*, bool, double*);               \
  template void sensitivity_reduce<T>(cudaStream_t, const T*, const T*, i64, i64, i64, int, double*, double*);
SENSINET_INSTANTIATE(float)
SENSINET_INSTANTIATE(double)
#undef SENSINET_INSTANTIATE

}  // namespace sensinet::cuda::kern
