// ReLU activation patterns on the device (as patterns.hpp): the on/off bit (z > 0) of every neuron of a
// layer, ORed into the sample's packed words. Bits of neighbouring layers can share a word, so each bit
// goes in with an atomic OR; the words start at zero.
#include "cuda_check.hpp"
#include "device_math.cuh"

namespace sensinet::cuda::kern {

namespace {

template <class T>
__global__ void pack_bits_kernel(const T* z, i64 rows, i64 width, i64 bit0, unsigned long long* out, i64 n_words) {
  const i64 n = rows * width;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    if (z[i] > T(0)) {
      const i64 r = i / width, b = bit0 + i % width;
      atomicOr(out + r * n_words + (b >> 6), 1ull << (b & 63));
    }
  }
}

}  // namespace

template <class T>
void pack_bits(cudaStream_t s, const T* z, i64 rows, i64 width, i64 bit0, unsigned long long* out, i64 n_words) {
  if (rows == 0 || width == 0) return;
  pack_bits_kernel<T><<<dev::grid_for(rows * width), 256, 0, s>>>(z, rows, width, bit0, out, n_words);
  SENSINET_CUDA_CHECK_LAUNCH("pack_bits");
}

template void pack_bits<float>(cudaStream_t, const float*, i64, i64, i64, unsigned long long*, i64);
template void pack_bits<double>(cudaStream_t, const double*, i64, i64, i64, unsigned long long*, i64);

}  // namespace sensinet::cuda::kern
