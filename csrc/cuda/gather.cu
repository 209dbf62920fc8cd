// Row gather of a minibatch from the device-resident data set through the epoch's permutation (uploaded
// once per epoch); the offset of the minibatch is read from the device-side StepControl.
#include "cuda_check.hpp"
#include "device_math.cuh"

namespace sensinet::cuda::kern {

namespace {

template <class T>
__global__ void gather_kernel(const T* x, i64 dx, const T* y, i64 dy, const i64* idx, const StepControl* ctl, i64 m,
                              T* xb, T* yb) {
  const i64 off = ctl ? ctl->row_offset : 0;
  const i64 w = dx + dy, n = m * w;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    const i64 r = i / w, c = i % w;
    const i64 src = idx[off + r];
    if (c < dx)
      xb[r * dx + c] = x[src * dx + c];
    else
      yb[r * dy + (c - dx)] = y[src * dy + (c - dx)];
  }
}

}  // namespace

template <class T>
void gather_rows(cudaStream_t s, const T* x, i64 dx, const T* y, i64 dy, const i64* idx, const StepControl* ctl,
                 i64 m, T* xb, T* yb) {
  if (m == 0) return;
  gather_kernel<T><<<dev::grid_for(m * (dx + dy)), 256, 0, s>>>(x, dx, y, dy, idx, ctl, m, xb, yb);
  SENSINET_CUDA_CHECK_LAUNCH("gather_rows");
}

template void gather_rows<float>(cudaStream_t, const float*, i64, const float*, i64, const i64*, const StepControl*,
                                 i64, float*, float*);
template void gather_rows<double>(cudaStream_t, const double*, i64, const double*, i64, const i64*,
                                  const StepControl*, i64, double*, double*);

}  // namespace sensinet::cuda::kern
