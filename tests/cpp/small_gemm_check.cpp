// small_gemm and simd_column_sums against a double-precision reference on random shapes: both operand
// layouts of A, row strides with padding, accumulate and bias on and off, float and double. Every buffer has
// its exact size, so a sanitizer build sees any read or write past the end; the padding between rows of C
// must keep its value. Prints the number of mismatches and exits non-zero if there are any.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "sensinet/small_gemm.hpp"

using namespace sensinet;

template <class T>
int check(std::mt19937& rng, int trials) {
  std::uniform_int_distribution<int> dim(0, 70), value(-100, 100);
  auto fill = [&](std::vector<T>& v) {
    for (auto& x : v) x = T(value(rng)) / T(64);  // exact in float: products and sums are exact too
  };
  const double tol = sizeof(T) == 8 ? 1e-12 : 1e-4;
  int bad = 0;
  for (int t = 0; t < trials; ++t) {
    const Index m = dim(rng), n = dim(rng), k = dim(rng) % 40;
    const bool trans = rng() & 1, acc = rng() & 1, bias = rng() & 1;
    const Index lda = trans ? m + rng() % 3 : k + rng() % 3, ldb = n + rng() % 3, ldc = n + rng() % 3;
    std::vector<T> A(trans ? k * lda : m * lda), B(k * ldb), C(m * ldc), bv(n);
    fill(A), fill(B), fill(C), fill(bv);
    std::vector<T> R = C;
    const Index ars = trans ? 1 : lda, acs = trans ? lda : 1;
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < n; ++j) {
        double s = (acc ? double(R[i * ldc + j]) : 0.0) + (bias ? double(bv[j]) : 0.0);
        for (Index p = 0; p < k; ++p) s += double(A[i * ars + p * acs]) * double(B[p * ldb + j]);
        R[i * ldc + j] = T(s);
      }
    small_gemm<T>(m, n, k, A.data(), ars, acs, B.data(), ldb, C.data(), ldc, acc, bias ? bv.data() : nullptr);
    for (Index i = 0; i < m; ++i)
      for (Index j = 0; j < ldc; ++j)
        if (std::fabs(double(C[i * ldc + j]) - double(R[i * ldc + j])) > tol * (1 + k)) ++bad;
    std::vector<T> sums(n + 1, T(7)), ref(n + 1, T(7));
    for (Index j = 0; j < n; ++j) {
      double s = acc ? 7.0 : 0.0;
      for (Index p = 0; p < k; ++p) s += double(B[p * ldb + j]);
      ref[j] = T(s);
    }
    simd_column_sums<T>(k, n, B.data(), ldb, sums.data(), acc);
    for (Index j = 0; j <= n; ++j)
      if (std::fabs(double(sums[j]) - double(ref[j])) > tol * (1 + k)) ++bad;
  }
  return bad;
}

int main() {
#ifndef SENSINET_SMALL_GEMM
  std::printf("no small-matrix kernel in this build\n");
  return 77;
#else
  std::mt19937 rng(1);
  const int bad = check<double>(rng, 3000) + check<float>(rng, 3000);
  std::printf("mismatches: %d\n", bad);
  return bad != 0;
#endif
}
