// Elementwise activations and their derivatives, applied to contiguous buffers.
#pragma once
#include <cmath>
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
// Written on Eigen's packet primitives (AVX-512, AVX2 or SSE, whatever the build targets) because Eigen
// 3.4 evaluates `select` expressions one scalar at a time; both branches are computed per packet and
// blended. The tail shorter than a packet uses std::tanh.
inline void tanh_double(const double* x, double* y, Index n) {
  using namespace Eigen::internal;
  using P = typename packet_traits<double>::type;
  constexpr Index PS = unpacket_traits<P>::size;
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
  const P one = pset1<P>(1.0), zero = pset1<P>(0.0), quarter = pset1<P>(0.25), m2 = pset1<P>(-2.0);
  // exp(g) = (q + p) / (q - p) (Cephes' rational form, as in Eigen's pexp), folded into (1 - e) / (1 + e)
  // with e = 2^k exp(g): one division instead of two.
  const P log2e = pset1<P>(1.4426950408889634073599), half = pset1<P>(0.5), lo = pset1<P>(-709.0);
  const P ln2_hi = pset1<P>(0.693145751953125), ln2_lo = pset1<P>(1.42860682030941723212e-6);
  const P p0 = pset1<P>(1.26177193074810590878e-4), p1 = pset1<P>(3.02994407707441961300e-2),
          p2 = pset1<P>(9.99999999999999999910e-1);
  const P q0 = pset1<P>(3.00198505138664455042e-6), q1 = pset1<P>(2.52448340349684104192e-3),
          q2 = pset1<P>(2.27265548208155028766e-1), q3 = pset1<P>(2.00000000000000000009e0);
  Index i = 0;
  for (; i + PS <= n; i += PS) {
    const P v = ploadu<P>(x + i);
    const P ax = pabs(v);
    const P t = pmax(pmul(m2, ax), lo);            // -2|x|, clamped where tanh is +-1 anyway
    const P k = pfloor(pmadd(log2e, t, half));     // t = g + k ln 2, |g| <= ln2 / 2
    const P g = psub(psub(t, pmul(k, ln2_hi)), pmul(k, ln2_lo));
    const P g2 = pmul(g, g);
    const P pg = pmul(g, pmadd(pmadd(p0, g2, p1), g2, p2));
    const P qg = pmadd(pmadd(pmadd(q0, g2, q1), g2, q2), g2, q3);
    const P a = psub(qg, pg), b = pldexp(padd(qg, pg), k);  // e = b / a
    const P big = pdiv(psub(a, b), padd(a, b));
    const P v2 = pmul(v, v);
    P poly = pset1<P>(c[10]);
    for (int j = 9; j >= 0; --j) poly = pmadd(poly, v2, pset1<P>(c[j]));
    const P large = pselect(pcmp_lt(v, zero), pnegate(big), big);
    pstoreu(y + i, pselect(pcmp_lt(ax, quarter), pmul(v, poly), large));
  }
  for (; i < n; ++i) y[i] = std::tanh(x[i]);
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
