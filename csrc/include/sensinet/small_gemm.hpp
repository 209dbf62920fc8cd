// Register-blocked kernel for the small products of small networks (widths of tens, minibatches of tens
// to hundreds). Eigen's GEMM packs both operands and picks cache blocks on every call, which at these
// sizes costs as much as the arithmetic; this kernel reads the operands in place: B row by row (unit
// stride), A one element at a time through two strides, so a transposed A (x^T g for weight gradients)
// needs no copy, and it can start from a bias row. Also the column sums of a row-major matrix (bias
// gradients). Only built with AVX-512 or AVX2 (masked loads and stores handle the last partial vector of a
// row); other builds, and products too large to gain, go to Eigen (network.hpp decides).
#pragma once
#include <algorithm>

#include "sensinet/types.hpp"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define SENSINET_SMALL_GEMM 1
// Fully unrolled register loops: with constant indices GCC keeps the accumulators in registers.
#define SENSINET_UNROLL _Pragma("GCC unroll 16")
#endif

namespace sensinet {

#ifdef SENSINET_SMALL_GEMM
namespace detail {

template <class T>
struct Simd;

#if defined(__AVX512F__)
template <>
struct Simd<double> {
  using V = __m512d;
  using M = __mmask8;
  static constexpr Index W = 8;
  static M mask(Index n) { return n >= W ? M(0xFF) : M((1u << n) - 1); }
  static V zero() { return _mm512_setzero_pd(); }
  static V bcast(const double* p) { return _mm512_set1_pd(*p); }
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static V load(const double* p, M m) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static void store(double* p, V v, M m) { _mm512_mask_storeu_pd(p, m, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
};
template <>
struct Simd<float> {
  using V = __m512;
  using M = __mmask16;
  static constexpr Index W = 16;
  static M mask(Index n) { return n >= W ? M(0xFFFF) : M((1u << n) - 1); }
  static V zero() { return _mm512_setzero_ps(); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, V v, M m) { _mm512_mask_storeu_ps(p, m, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
};
#else
// AVX2: masks are vectors whose lanes have the sign bit set where active.
template <>
struct Simd<double> {
  using V = __m256d;
  using M = __m256i;
  static constexpr Index W = 4;
  static M mask(Index n) {
    const Index m = std::min<Index>(n, W);
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(m), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static V zero() { return _mm256_setzero_pd(); }
  static V bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static V load(const double* p, M m) { return _mm256_maskload_pd(p, m); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static void store(double* p, V v, M m) { _mm256_maskstore_pd(p, m, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
};
template <>
struct Simd<float> {
  using V = __m256;
  using M = __m256i;
  static constexpr Index W = 8;
  static M mask(Index n) {
    const int m = static_cast<int>(std::min<Index>(n, W));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V zero() { return _mm256_setzero_ps(); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, V v, M m) { _mm256_maskstore_ps(p, m, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
};
#endif

// MR rows x NV vectors of C, the last vector masked by `tail`; the accumulators stay in registers over k.
template <class T, int MR, int NV>
void small_gemm_block(Index k, const T* a, Index a_rs, Index a_cs, const T* b, Index ldb, T* c, Index ldc,
                      typename Simd<T>::M tail, bool accumulate, const T* bias) {
  using S = Simd<T>;
  using V = typename S::V;
  V init[NV];
  SENSINET_UNROLL
  for (int q = 0; q < NV; ++q)
    init[q] = !bias ? S::zero() : q + 1 < NV ? S::load(bias + q * S::W) : S::load(bias + q * S::W, tail);
  V acc[MR][NV];
  SENSINET_UNROLL
  for (int r = 0; r < MR; ++r)
    SENSINET_UNROLL
    for (int q = 0; q < NV; ++q) acc[r][q] = init[q];
  for (Index p = 0; p < k; ++p) {
    const T* bp = b + p * ldb;
    V bv[NV];
    SENSINET_UNROLL
    for (int q = 0; q + 1 < NV; ++q) bv[q] = S::load(bp + q * S::W);
    bv[NV - 1] = S::load(bp + (NV - 1) * S::W, tail);
    const T* ap = a + p * a_cs;
    SENSINET_UNROLL
    for (int r = 0; r < MR; ++r) {
      const V av = S::bcast(ap + r * a_rs);
      SENSINET_UNROLL
      for (int q = 0; q < NV; ++q) acc[r][q] = S::fma(av, bv[q], acc[r][q]);
    }
  }
  SENSINET_UNROLL
  for (int r = 0; r < MR; ++r) {
    T* cr = c + r * ldc;
    SENSINET_UNROLL
    for (int q = 0; q + 1 < NV; ++q)
      S::store(cr + q * S::W, accumulate ? S::add(acc[r][q], S::load(cr + q * S::W)) : acc[r][q]);
    T* cl = cr + (NV - 1) * S::W;
    S::store(cl, accumulate ? S::add(acc[r][NV - 1], S::load(cl, tail)) : acc[r][NV - 1], tail);
  }
}

template <class T, int NV>
void small_gemm_panel(Index m, Index k, const T* a, Index a_rs, Index a_cs, const T* b, Index ldb, T* c, Index ldc,
                      typename Simd<T>::M tail, bool accumulate, const T* bias) {
  constexpr int MR = 4;
  Index i = 0;
  for (; i + MR <= m; i += MR)
    small_gemm_block<T, MR, NV>(k, a + i * a_rs, a_rs, a_cs, b, ldb, c + i * ldc, ldc, tail, accumulate, bias);
  const T* ai = a + i * a_rs;
  T* ci = c + i * ldc;
  switch (m - i) {
    case 3: small_gemm_block<T, 3, NV>(k, ai, a_rs, a_cs, b, ldb, ci, ldc, tail, accumulate, bias); break;
    case 2: small_gemm_block<T, 2, NV>(k, ai, a_rs, a_cs, b, ldb, ci, ldc, tail, accumulate, bias); break;
    case 1: small_gemm_block<T, 1, NV>(k, ai, a_rs, a_cs, b, ldb, ci, ldc, tail, accumulate, bias); break;
    default: break;
  }
}

}  // namespace detail

// C (m x n, row stride ldc) (=|+=) A (m x k, element (i, p) at a[i * a_rs + p * a_cs]) * B (k x n, row
// stride ldb), plus the row vector `bias` (n values) on every row when given. Columns go in panels of up
// to 3 vectors (24 doubles with AVX-512), rows in blocks of 4.
template <class T>
void small_gemm(Index m, Index n, Index k, const T* a, Index a_rs, Index a_cs, const T* b, Index ldb, T* c, Index ldc,
                bool accumulate, const T* bias = nullptr) {
  using S = detail::Simd<T>;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : T(0)) + (bias ? bias[j] : T(0));
    return;
  }
  for (Index j = 0; j < n; j += 3 * S::W) {
    const Index w = std::min<Index>(n - j, 3 * S::W);
    const Index nv = (w + S::W - 1) / S::W;
    const auto tail = S::mask(w - (nv - 1) * S::W);
    const T* bj = bias ? bias + j : nullptr;
    if (nv == 3)
      detail::small_gemm_panel<T, 3>(m, k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, tail, accumulate, bj);
    else if (nv == 2)
      detail::small_gemm_panel<T, 2>(m, k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, tail, accumulate, bj);
    else
      detail::small_gemm_panel<T, 1>(m, k, a, a_rs, a_cs, b + j, ldb, c + j, ldc, tail, accumulate, bj);
  }
}

// out[j] (=|+=) sum over the k rows of B (row stride ldb) of B(p, j): bias gradients. Vector adds along
// rows, four partial sums to hide the add latency (Eigen reduces a row-major matrix column by column).
template <class T>
void simd_column_sums(Index k, Index n, const T* b, Index ldb, T* out, bool accumulate) {
  using S = detail::Simd<T>;
  for (Index j = 0; j < n; j += S::W) {
    const auto m = S::mask(n - j);
    auto s0 = S::zero(), s1 = S::zero(), s2 = S::zero(), s3 = S::zero();
    const T* bj = b + j;
    Index p = 0;
    for (; p + 4 <= k; p += 4) {
      s0 = S::add(s0, S::load(bj + p * ldb, m));
      s1 = S::add(s1, S::load(bj + (p + 1) * ldb, m));
      s2 = S::add(s2, S::load(bj + (p + 2) * ldb, m));
      s3 = S::add(s3, S::load(bj + (p + 3) * ldb, m));
    }
    for (; p < k; ++p) s0 = S::add(s0, S::load(bj + p * ldb, m));
    auto total = S::add(S::add(s0, s1), S::add(s2, s3));
    if (accumulate) total = S::add(total, S::load(out + j, m));
    S::store(out + j, total, m);
  }
}
#endif

}  // namespace sensinet
