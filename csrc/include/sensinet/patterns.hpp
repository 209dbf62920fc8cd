// Activation patterns of piecewise-linear networks (Picchiotti & Gori 2021): the on/off bit (z > 0) of
// every neuron of the chosen layers, packed 64 per word, per sample. Inside one pattern the network is
// exactly affine.
#pragma once
#include <cstdint>
#include <vector>

#include "sensinet/network.hpp"

namespace sensinet {

inline Index pattern_bits(const Architecture& a, const std::vector<Index>& layers) {
  Index bits = 0;
  for (Index l : layers) bits += a.layers[l].inner_width();
  return bits;
}

// out: n x n_words row-major, n_words = ceil(bits / 64). Bit b of a sample is word b / 64, bit b % 64, in
// the order of `layers` and of the neurons within each layer.
template <class T, class In>
void relu_patterns(const Architecture& a, const T* theta, const In& x, const std::vector<Index>& layers,
                   uint64_t* out, Index n_words, Workspace<T>& ws) {
  const Index n = x.rows();
  const Index step = chunk_rows(a, std::max<Index>(n, 1));
  Index top = 0;
  for (Index l : layers) top = std::max(top, l);
  for (Index s = 0; s < n; s += step) {
    const Index m = std::min(step, n - s);
    CStridedMap<T> xs(x.data() + s * x.outerStride(), m, x.cols(), Eigen::OuterStride<>(x.outerStride()));
    forward(a, theta, xs, ws, 0, top);
    for (Index i = 0; i < m; ++i) {
      uint64_t* row = out + (s + i) * n_words;
      std::fill(row, row + n_words, uint64_t(0));
      Index b = 0;
      for (Index l : layers) {
        const T* z = ws.z[l].data() + i * ws.z[l].cols();
        // Branch-free: half the bits are set at random, a branch would mispredict half the time.
        for (Index j = 0; j < ws.z[l].cols(); ++j, ++b) row[b >> 6] |= uint64_t(z[j] > T(0)) << (b & 63);
      }
    }
  }
}

}  // namespace sensinet
