// Elementwise activations and their derivatives, applied to contiguous buffers.
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>

#include "sensinet/config.hpp"
#include "sensinet/types.hpp"

namespace sensinet {

namespace detail {

// 2^k for packets of integral k in [-1022, 1023]. On x86 the bits come straight from k: adding 2^52 + 1023
// leaves k + 1023 in the low mantissa bits, and a 52-bit shift moves them into the exponent field (Eigen's
// generic pldexp splits the exponent for the full range and costs several times more).
template <class P>
inline P pow2_int(const P& k) {
  return Eigen::internal::pldexp(Eigen::internal::pset1<P>(1.0), k);
}
// n / d. Generic: one hardware division.
template <class P>
inline P divide(const P& n, const P& d) {
  return Eigen::internal::pdiv(n, d);
}
#if defined(__AVX512F__)
template <>
inline __m512d pow2_int(const __m512d& k) {
  const __m512d biased = _mm512_add_pd(k, _mm512_set1_pd(4503599627371519.0));  // 2^52 + 1023
  return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(biased), 52));
}
// A 512-bit division blocks the divider for many cycles; a 14-bit reciprocal estimate with one Newton step
// (28 bits) and one correction of the quotient by its exact FMA residual is accurate to about 0.5 ulp and
// runs on the FMA units.
template <>
inline __m512d divide(const __m512d& n, const __m512d& d) {
  __m512d r = _mm512_rcp14_pd(d);
  r = _mm512_fmadd_pd(r, _mm512_fnmadd_pd(d, r, _mm512_set1_pd(1.0)), r);
  const __m512d q = _mm512_mul_pd(n, r);
  return _mm512_fmadd_pd(_mm512_fnmadd_pd(d, q, n), r, q);
}
#endif
#if defined(__AVX2__)
template <>
inline __m256d pow2_int(const __m256d& k) {
  const __m256d biased = _mm256_add_pd(k, _mm256_set1_pd(4503599627371519.0));
  return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(biased), 52));
}
#endif

// Eigen 3.4 vectorizes tanh only for float. For double: tanh|x| = (1 - e) / (1 + e) with e = exp(-2|x|),
// and the sign copied from x. exp(t) = 2^k exp(g), t = g + k ln 2, |g| <= ln2 / 2, with Cephes' rational
// form exp(g) = (q + p) / (q - p) (as in Eigen's pexp). With s = 2^k:
//   tanh|x| = [q (1 - s) - p (1 + s)] / [q (1 + s) - p (1 - s)],
// which is -p / q for small |x| (k = 0): no cancellation near 0, so no separate small-x branch. Beyond
// |x| = 20 tanh is 1 in double, so t is clamped at -40 and 2^k stays a normal number.
// Written on Eigen's packet primitives (AVX-512, AVX2 or SSE, whatever the build targets); the tail
// shorter than a packet uses std::tanh.
inline void tanh_double(const double* x, double* y, Index n) {
  using namespace Eigen::internal;
  using P = typename packet_traits<double>::type;
  constexpr Index PS = sizeof(P) / sizeof(double);
  const P one = pset1<P>(1.0), m2 = pset1<P>(-2.0), sign = pset1<P>(-0.0);
  const P log2e = pset1<P>(1.4426950408889634073599), half = pset1<P>(0.5), mhalf = pset1<P>(-0.5),
          lo = pset1<P>(-40.0);
  const P ln2_hi = pset1<P>(0.693145751953125), ln2_lo = pset1<P>(1.42860682030941723212e-6);
  // Cephes' coefficients, q's halved; the leading ones (1 - 1e-19 and 2 + 1e-19) are 1 and 2 in double.
  const P p0 = pset1<P>(1.26177193074810590878e-4), p1 = pset1<P>(3.02994407707441961300e-2);
  const P h0 = pset1<P>(1.50099252569332227521e-6), h1 = pset1<P>(1.26224170174842052096e-3),
          h2 = pset1<P>(1.13632774104077514383e-1), two = pset1<P>(2.0);
  const Index full = n - n % PS;
  for (Index i = 0; i < full; i += PS) {
    const P v = ploadu<P>(x + i);
    const P t = pmax(pmul(m2, pabs(v)), lo);  // NaN stays NaN: pmax returns its first operand then
    // k = 0 up to |t| = 1/2, a little past |g| = ln2 / 2 (the rational is still accurate to about 1e-17
    // there): the cancellation-free -p / q then covers |x| < 1/4, where 1 / sinh|t| would amplify the
    // errors of e most.
    const P k = pand(pfloor(pmadd(log2e, t, half)), pcmp_le(t, mhalf));
    const P g = psub(psub(t, pmul(k, ln2_hi)), pmul(k, ln2_lo));
    const P g2 = pmul(g, g);
    // p = g (1 + u), q = 2 (1 + w), each formed with one rounding after the small correction.
    const P u = pmul(g2, pmadd(p0, g2, p1)), w = pmul(g2, pmadd(pmadd(h0, g2, h1), g2, h2));
    const P p = pmadd(g, u, g), q = pmadd(two, w, two);
    const P s = pow2_int(k);
    // An FMA in each of num and den saves a rounding (the worst error near |x| = 0.5 drops from 5 to 2.5 ulp).
    const P sm = psub(one, s), sp = padd(one, s), nsm = psub(s, one), nsp = psub(pnegate(one), s);
    const P num = pmadd(q, sm, pmul(p, nsp)), den = pmadd(q, sp, pmul(p, nsm));
    pstoreu(y + i, pxor(divide(num, den), pand(v, sign)));
  }
  for (Index i = full; i < n; ++i) y[i] = std::tanh(x[i]);
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
