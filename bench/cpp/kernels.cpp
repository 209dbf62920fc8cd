// Kernel microbenchmark behind the README's small-matrix, tanh and bare-GEMM figures (pytest-benchmark times whole
// Python calls; these kernels are internal). Medians of 200 repetitions, one thread:
//   small_gemm against Eigen's GEMM for C = A B, C = X^T G (weight gradients) and C = A W^T (W copied to
//   row-major scratch first, as network.hpp does), and the float64 tanh per value.
// Build and run from the repository root (AVX-512 host; use -march=x86-64-v3 for the AVX2 path):
//   g++ -std=c++17 -O3 -DNDEBUG -march=x86-64-v4 -mtune=generic -Wno-ignored-attributes \
//       -Icsrc/include -I/usr/include/eigen3 bench/cpp/kernels.cpp -o /tmp/kernels && /tmp/kernels
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "sensinet/activations.hpp"
#include "sensinet/small_gemm.hpp"
#include "sensinet/train.hpp"

using namespace sensinet;

// Each call's results count as read, so repeated identical calls are neither merged nor hoisted.
template <class F>
double median_us(F f, int inner = 20) {
  std::vector<double> ts;
  for (int r = 0; r < 200; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int q = 0; q < inner; ++q) {
      f();
      asm volatile("" ::: "memory");
    }
    ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / inner);
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2] * 1e6;
}

template <class T>
void gemm_shapes(const std::vector<std::array<Index, 3>>& shapes) {
#ifdef SENSINET_SMALL_GEMM
  for (const auto& s : shapes) {
    const Index m = s[0], k = s[1], n = s[2];
    RowMatrix<T> A = RowMatrix<T>::Random(m, k), B = RowMatrix<T>::Random(k, n), X = RowMatrix<T>::Random(k, m);
    RowMatrix<T> W = RowMatrix<T>::Random(n, k), Wt(k, n), C(m, n);
    const double e1 = median_us([&] { C.noalias() = A * B; });
    const double s1 = median_us([&] { small_gemm<T>(m, n, k, A.data(), k, 1, B.data(), n, C.data(), n, false); });
    const double e2 = median_us([&] { C.noalias() = X.transpose() * B; });
    const double s2 = median_us([&] { small_gemm<T>(m, n, k, X.data(), 1, m, B.data(), n, C.data(), n, false); });
    const double e3 = median_us([&] { C.noalias() = A * W.transpose(); });
    const double s3 = median_us([&] {
      Wt = W.transpose();
      small_gemm<T>(m, n, k, A.data(), k, 1, Wt.data(), n, C.data(), n, false);
    });
    std::printf("%s %4ldx%4ldx%4ld  A*B eigen %8.3f small %8.3f us (%.2fx)  X^T*G %.2fx  A*W^T %.2fx\n",
                sizeof(T) == 8 ? "f64" : "f32", long(m), long(k), long(n), e1, s1, e1 / s1, e2 / s2, e3 / s3);
  }
#else
  (void)shapes;
  std::printf("no small-matrix kernel in this build\n");
#endif
}

// The thirteen products of one SGD step of bench (a), 784 -> 512x4 -> 10 at batch 256, as bare Eigen calls:
// forward x W, weight gradient x^T g, propagation g W^T (not below the first layer).
void step_a_products() {
  using M = RowMatrix<double>;
  const Index w[6] = {784, 512, 512, 512, 512, 10};
  double total = 0, flops = 0;
  for (int l = 0; l < 5; ++l) {
    M A = M::Random(256, w[l]), W = M::Random(w[l], w[l + 1]), G = M::Random(256, w[l + 1]);
    M Z(256, w[l + 1]), dW(w[l], w[l + 1]), dX(256, w[l]);
    total += median_us([&] { Z.noalias() = A * W; }, 1) + median_us([&] { dW.noalias() = A.transpose() * G; }, 1);
    if (l > 0) total += median_us([&] { dX.noalias() = G * W.transpose(); }, 1);
    flops += 2.0 * 256 * double(w[l]) * double(w[l + 1]) * (l > 0 ? 3 : 2);
  }
  // The engine's whole training step in the same process and time window (8 steps per call, as in bench/).
  std::vector<LayerSpec> specs;
  for (int l = 0; l < 5; ++l) {
    LayerSpec s;
    s.n_in = w[l], s.n_out = w[l + 1], s.act = l < 4 ? Activation::Relu : Activation::Identity;
    specs.push_back(s);
  }
  Architecture arch(specs, Loss::CrossEntropy);
  Vector<double> theta = Vector<double>::Random(arch.n_params()) * 0.03;
  M X = M::Random(2048, 784), Y = M::Zero(2048, 10);
  for (Index i = 0; i < 2048; ++i) Y(i, i % 10) = 1;
  OptConfig oc;
  OptState<double> st;
  TrainConfig tc;
  tc.batch_size = 256, tc.shuffle = false;
  Workspace<double> ws;
  const std::function<bool(const Progress&)> poll = [](const Progress&) { return false; };
  const double step = median_us([&] { train(arch, theta.data(), X, Y, oc, st, tc, poll, ws); }, 1) / 8;
  std::printf("bench (a) float64: 13 products as bare Eigen GEMMs %.2f ms (%.1f GFLOP/s); engine step %.2f ms "
              "(%.1f GFLOP/s, %.0f %% of the bare products' rate)\n",
              total / 1e3, flops / total / 1e3, step / 1e3, flops / step / 1e3, 100 * total / step);
}

int main() {
  step_a_products();
  gemm_shapes<double>({{64, 2, 20}, {64, 20, 20}, {256, 32, 32}, {256, 64, 64}, {128, 100, 100}, {256, 128, 128}});
  gemm_shapes<float>({{64, 20, 20}, {256, 64, 64}});
  const Index n = 1280;
  std::vector<double> x(n), y(n);
  for (Index i = 0; i < n; ++i) x[i] = 3.0 * std::sin(1.3 * double(i));
  const double t = median_us([&] { activate<double>(Activation::Tanh, 0.0, x.data(), y.data(), n); }, 100);
  std::printf("tanh float64: %.3f ns per value (1280 values per call)\n", t * 1e3 / n);
}
