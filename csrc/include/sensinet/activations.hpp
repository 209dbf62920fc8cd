// Elementwise activations and their derivatives, applied to contiguous buffers.
#pragma once
#include <stdexcept>
#include <string>

#include "sensinet/types.hpp"

namespace sensinet {

enum class Activation { Identity, Relu, LeakyRelu, Tanh, Sigmoid, Softplus };

inline Activation parse_activation(const std::string& name) {
  if (name == "identity" || name == "linear") return Activation::Identity;
  if (name == "relu") return Activation::Relu;
  if (name == "leaky_relu") return Activation::LeakyRelu;
  if (name == "tanh") return Activation::Tanh;
  if (name == "sigmoid" || name == "logistic") return Activation::Sigmoid;
  if (name == "softplus") return Activation::Softplus;
  throw std::invalid_argument("activation: expected one of identity, relu, leaky_relu, tanh, sigmoid, softplus; got '" +
                              name + "'");
}

inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::Relu: return "relu";
    case Activation::LeakyRelu: return "leaky_relu";
    case Activation::Tanh: return "tanh";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Softplus: return "softplus";
  }
  return "?";
}

// Piecewise linear activations keep an exact affine map per on/off pattern (ReLU clusters).
inline bool is_piecewise_linear(Activation a) {
  return a == Activation::Identity || a == Activation::Relu || a == Activation::LeakyRelu;
}

namespace detail {

// Eigen 3.4 vectorizes tanh only for float. For double: an odd Taylor polynomial (11 terms, exact to
// rounding for |x| < 0.25) and (1 - e) / (1 + e) with e = exp(-2|x|) above, where no cancellation occurs.
// Both branches are computed on packets of the chunk and blended with a select.
inline void tanh_double(const double* x, double* y, Index n) {
  constexpr Index kChunk = 256;
  using Chunk = Eigen::Array<double, Eigen::Dynamic, 1, 0, kChunk, 1>;
  static constexpr double c[11] = {1.0,
                                   -0.3333333333333333,
                                   0.13333333333333333,
                                   -0.05396825396825397,
                                   0.021869488536155203,
                                   -0.008863235529902197,
                                   0.003592128036572481,
                                   -0.0014558343870513183,
                                   0.000590027440945586,
                                   -0.00023912911424355248,
                                   9.691537956929451e-05};
  for (Index s = 0; s < n; s += kChunk) {
    const Index m = std::min(kChunk, n - s);
    Eigen::Map<const Chunk> xs(x + s, m);
    Chunk ax = xs.abs();
    Chunk e = (-2.0 * ax).exp();
    Chunk big = (1.0 - e) / (1.0 + e);
    Chunk x2 = xs * xs;
    Chunk p = Chunk::Constant(m, c[10]);
    for (int k = 9; k >= 0; --k) p = p * x2 + c[k];
    Eigen::Map<Chunk>(y + s, m) = (ax < 0.25).select(xs * p, (xs < 0.0).select(-big, big));
  }
}

template <class T>
inline void tanh_array(const T* x, T* y, Index n) {
  if constexpr (std::is_same_v<T, double>) {
    tanh_double(x, y, n);
  } else {
    ArrMap<T>(y, n) = CArrMap<T>(x, n).tanh();
  }
}

}  // namespace detail

// h = act(z) over n contiguous values (z and h may alias).
template <class T>
void activate(Activation a, T alpha, const T* z, T* h, Index n) {
  CArrMap<T> Z(z, n);
  ArrMap<T> H(h, n);
  switch (a) {
    case Activation::Identity:
      if (h != z) H = Z;
      break;
    case Activation::Relu: H = Z.max(T(0)); break;
    case Activation::LeakyRelu: H = (Z > T(0)).select(Z, alpha * Z); break;
    case Activation::Tanh: detail::tanh_array(z, h, n); break;
    case Activation::Sigmoid: H = T(1) / (T(1) + (-Z).exp()); break;
    // max(z, 0) + log1p(exp(-|z|)) neither overflows nor loses small values.
    case Activation::Softplus: H = Z.max(T(0)) + (-Z.abs()).exp().log1p(); break;
  }
}

// g *= act'(z), with h = act(z) available to reuse.
template <class T>
void multiply_derivative(Activation a, T alpha, const T* z, const T* h, T* g, Index n) {
  CArrMap<T> Z(z, n), H(h, n);
  ArrMap<T> G(g, n);
  switch (a) {
    case Activation::Identity: break;
    case Activation::Relu: G = (Z > T(0)).select(G, T(0)); break;
    case Activation::LeakyRelu: G = (Z > T(0)).select(G, alpha * G); break;
    case Activation::Tanh: G *= T(1) - H * H; break;
    case Activation::Sigmoid: G *= H * (T(1) - H); break;
    case Activation::Softplus: G *= T(1) / (T(1) + (-Z).exp()); break;
  }
}

// act''(z) times g, elementwise into out (used by curvature kernels).
template <class T>
void second_derivative(Activation a, T alpha, const T* z, const T* h, const T* g, T* out, Index n) {
  (void)alpha;
  CArrMap<T> Z(z, n), H(h, n), G(g, n);
  ArrMap<T> O(out, n);
  switch (a) {
    case Activation::Identity:
    case Activation::Relu:
    case Activation::LeakyRelu: O.setZero(); break;
    case Activation::Tanh: O = G * (T(-2) * H * (T(1) - H * H)); break;
    case Activation::Sigmoid: O = G * (H * (T(1) - H) * (T(1) - T(2) * H)); break;
    case Activation::Softplus: {
      auto s = T(1) / (T(1) + (-Z).exp());
      O = G * (s * (T(1) - s));
      break;
    }
  }
}

}  // namespace sensinet
