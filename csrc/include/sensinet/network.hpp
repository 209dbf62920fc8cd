// Forward pass with explicit caches, reverse pass for the whole net or a block of consecutive layers,
// and full-batch loss + gradient accumulated over row chunks (bounded memory).
#pragma once
#include <numeric>
#include <algorithm>
#include <array>
#include <vector>

#include "sensinet/activations.hpp"
#include "sensinet/config.hpp"
#include "sensinet/loss.hpp"
#include "sensinet/small_gemm.hpp"

namespace sensinet {

// Products below this many flops run single-threaded; at or below it small_gemm also beats Eigen's GEMM
// (measured: 1.7x at 64x20x20, 1.1-1.3x at 256x64x64, even at 128x100x100).
constexpr double kSmallGemmFlops = 4e6;

// Routes a small product to small_gemm (operands read in place; a B with unit row stride, i.e. a
// transposed weight matrix, is first copied to row-major scratch). False where it does not apply: no
// SIMD kernel in this build, a matrix-vector product (Eigen's GEMV is faster), or a large product.
template <class Dst, class A, class B, class T>
bool small_product(Dst& dst, const A& a, const B& b, bool accumulate, const T* bias) {
#ifdef SENSINET_SMALL_GEMM
  constexpr bool direct = (int(Dst::Flags) & int(A::Flags) & int(B::Flags) & Eigen::DirectAccessBit) != 0;
  if constexpr (direct) {
    const Index m = dst.rows(), n = dst.cols(), k = a.cols();
    if (a.rows() != m || b.rows() != k || b.cols() != n) return false;  // Eigen resizes (or asserts)
    if (n < 2 || dst.colStride() != 1 || 2.0 * double(m) * double(n) * double(k) > kSmallGemmFlops) return false;
    const T* bp = b.data();
    Index ldb = b.rowStride();
    if (b.colStride() != 1) {
      thread_local std::vector<T> scratch;
      scratch.resize(static_cast<size_t>(k * n));
      MatMap<T>(scratch.data(), k, n) = b;
      bp = scratch.data();
      ldb = n;
    }
    small_gemm<T>(m, n, k, a.data(), a.rowStride(), a.colStride(), bp, ldb, dst.data(), dst.rowStride(), accumulate,
                  bias);
    return true;
  }
#endif
  (void)dst, (void)a, (void)b, (void)accumulate, (void)bias;
  return false;
}

// dst (=|+=) A * B (+ the row vector `bias` on every row), split by output columns over the engine's
// threads. Each thread runs a single-threaded Eigen GEMM on its slice, so the only synchronisation is the
// barrier at the end of the region (Eigen's own parallel GEMM busy-waits on hand-offs between threads,
// which collapses when another thread pool, e.g. PyTorch's autograd workers, competes for the cores).
template <class Dst, class A, class B>
void gemm(Dst&& dst, const A& a, const B& b, bool accumulate, const typename A::Scalar* bias = nullptr) {
  if (small_product(dst, a, b, accumulate, bias)) return;
  const Index cols = dst.cols();
  int threads = engine_threads();
  const double flops = 2.0 * double(a.rows()) * double(a.cols()) * double(cols);
  if (threads > 1 && (cols < 32 * threads || flops < kSmallGemmFlops)) threads = 1;
  if (threads <= 1) {
    if (accumulate)
      dst.noalias() += a * b;
    else
      dst.noalias() = a * b;
  } else {
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; ++t) {
      // column blocks in multiples of 16 keep the slices aligned to SIMD widths
      const Index per = ((cols + threads - 1) / threads + 15) / 16 * 16;
      const Index c0 = std::min(cols, per * t), c1 = std::min(cols, per * (t + 1));
      if (c1 > c0) {
        if (accumulate)
          dst.middleCols(c0, c1 - c0).noalias() += a * b.middleCols(c0, c1 - c0);
        else
          dst.middleCols(c0, c1 - c0).noalias() = a * b.middleCols(c0, c1 - c0);
      }
    }
#else
    if (accumulate)
      dst.noalias() += a * b;
    else
      dst.noalias() = a * b;
#endif
  }
  if (bias) dst.rowwise() += Eigen::Map<const RowVector<typename A::Scalar>>(bias, cols);
}

// dst (=|+=) the column sums of g (bias gradients).
template <class T, class G>
void column_sums(VecMap<T> dst, const G& g, bool accumulate) {
#ifdef SENSINET_SMALL_GEMM
  if (g.colStride() == 1) {
    simd_column_sums<T>(g.rows(), g.cols(), g.data(), g.rowStride(), dst.data(), accumulate);
    return;
  }
#endif
  if (accumulate)
    dst.noalias() += g.colwise().sum().transpose();
  else
    dst.noalias() = g.colwise().sum().transpose();
}

// Read-only views of one layer's parameters inside the flat vector.
template <class T>
struct LayerView {
  CMatMap<T> W1;
  CVecMap<T> b1;
  CMatMap<T> W2;  // residual2 only (0 x 0 otherwise)
  LayerView(const LayerSpec& s, const T* p)
      : W1(p, s.n_in, s.inner_width()),
        b1(p + s.n_w1(), s.n_b1()),
        W2(s.n_w2() ? p + s.n_w1() + s.n_b1() : p, s.n_w2() ? s.n_hidden : 0, s.n_w2() ? s.n_out : 0) {}
};

// Per-layer caches of the last forward pass: pre-activations z, activations h and (residual blocks) the
// block output. The input of the first forwarded layer is referenced, not copied.
template <class T>
struct Workspace {
  std::vector<RowMatrix<T>> z, h, out;
  const T* in_data = nullptr;
  Index in_rows = 0, in_cols = 0, in_stride = 0, first = 0;
  // Optional neuron scaling factors h -> s * h (finite-difference sensitivities): scale[l][0] multiplies a
  // layer's activation h, scale[l][1] a residual block's output; nullptr means s = 1. Empty: no scaling.
  std::vector<std::array<const T*, 2>> scale;
  RowMatrix<T> g, gh, gtmp, dout;  // reverse-pass buffers, reused across calls
  Vector<T> spare, grad;            // training: second parameter buffer and gradient, reused across calls

  CStridedMap<T> input(Index l) const {
    if (l == first) return CStridedMap<T>(in_data, in_rows, in_cols, Eigen::OuterStride<>(in_stride));
    const RowMatrix<T>& o = output(l - 1);
    return CStridedMap<T>(o.data(), o.rows(), o.cols(), Eigen::OuterStride<>(o.cols()));
  }
  const RowMatrix<T>& output(Index l) const { return out[l].size() ? out[l] : h[l]; }
};

// Hook through which the reverse pass reports dJ/d(neuron values) with the values themselves: part 0 is a
// layer's activation h (the inner neurons of a residual block), part 1 a residual block's output.
template <class T>
struct BackwardHook {
  virtual ~BackwardHook() = default;
  virtual void neurons(Index layer, int part, const RowMatrix<T>& grad, const RowMatrix<T>& value) = 0;
};

// Forward layers first..last of `a` on input x (the input of layer `first`), keeping every cache.
template <class T, class In>
void forward(const Architecture& a, const T* theta, const In& x, Workspace<T>& ws, Index first = 0,
             Index last = -1) {
  if (last < 0) last = a.n_layers() - 1;
  const Index L = a.n_layers();
  ws.z.resize(L);
  ws.h.resize(L);
  ws.out.resize(L);
  ws.in_data = x.data();
  ws.in_rows = x.rows();
  ws.in_cols = x.cols();
  ws.in_stride = x.outerStride();
  ws.first = first;
  for (Index l = first; l <= last; ++l) {
    const LayerSpec& s = a.layers[l];
    LayerView<T> p(s, theta + a.offsets[l]);
    auto in = ws.input(l);
    RowMatrix<T>& z = ws.z[l];
    RowMatrix<T>& h = ws.h[l];
    z.resize(in.rows(), s.inner_width());
    gemm(z, in, p.W1, false, p.b1.data());
    h.resize(z.rows(), z.cols());
    activate<T>(s.act, T(s.alpha), z.data(), h.data(), z.size());
    const bool scaled = !ws.scale.empty();
    if (scaled && ws.scale[l][0]) h.array().rowwise() *= CVecMap<T>(ws.scale[l][0], h.cols()).array().transpose();
    RowMatrix<T>& o = ws.out[l];
    if (s.kind == LayerKind::Dense) {
      o.resize(0, 0);
    } else if (s.kind == LayerKind::Residual2) {
      o = in;
      gemm(o, h, p.W2, true);
    } else {
      o = in + h;
    }
    if (scaled && ws.scale[l][1] && o.size())
      o.array().rowwise() *= CVecMap<T>(ws.scale[l][1], o.cols()).array().transpose();
  }
}

// Sum over layers of l2/2 * ||W||^2; adds l2 * W to grad for layers gfirst..glast.
template <class T>
T add_l2(const Architecture& a, const T* theta, T* grad, Index gfirst, Index glast) {
  long double reg = 0;
  for (Index l = 0; l < a.n_layers(); ++l) {
    const LayerSpec& s = a.layers[l];
    if (s.l2 == 0.0) continue;
    const T* p = theta + a.offsets[l];
    const T lam = T(s.l2);
    CVecMap<T> w1(p, s.n_w1()), w2(p + s.n_w1() + s.n_b1(), s.n_w2());
    reg += 0.5L * lam * (static_cast<long double>(w1.squaredNorm()) + static_cast<long double>(w2.squaredNorm()));
    if (grad && l >= gfirst && l <= glast) {
      T* g = grad + a.offsets[l];
      VecMap<T>(g, s.n_w1()) += lam * w1;
      VecMap<T>(g + s.n_w1() + s.n_b1(), s.n_w2()) += lam * w2;
    }
  }
  return static_cast<T>(reg);
}

// g *= act'(z) where g stacks K >= 1 copies of the cached rows (one block per output seed).
template <class T>
void mul_derivative_stacked(Activation act, T alpha, const RowMatrix<T>& z, const RowMatrix<T>& h, RowMatrix<T>& g) {
  const Index n = z.size();
  for (Index o = 0; o < g.size(); o += n) multiply_derivative<T>(act, alpha, z.data(), h.data(), g.data() + o, n);
}

// Reverse pass from the output down to layer `stop` (>= ws.first). `g` holds dJ/d(output) on entry and is
// consumed; its rows may stack K seeds over the cached rows (then grad must be nullptr). Parameter
// gradients of layers gfirst..glast are written (accumulate: added) into grad, in the full-length layout;
// overwriting on the first write saves a pass that zeroes it. Layers above glast only propagate. With
// input_grad, dJ/d(input of layer stop) is written there.
template <class T>
void backward(const Architecture& a, const T* theta, Workspace<T>& ws, RowMatrix<T>& g, Index stop, Index gfirst,
              Index glast, T* grad, bool accumulate, RowMatrix<T>* input_grad = nullptr,
              BackwardHook<T>* hook = nullptr) {
  for (Index l = a.n_layers() - 1; l >= stop; --l) {
    const LayerSpec& s = a.layers[l];
    LayerView<T> p(s, theta + a.offsets[l]);
    auto x = ws.input(l);
    const bool params = grad && l >= gfirst && l <= glast;
    const bool propagate = l > stop || input_grad;
    T* gp = params ? grad + a.offsets[l] : nullptr;
    const T alpha = T(s.alpha);
    const RowMatrix<T>& z = ws.z[l];
    const RowMatrix<T>& h = ws.h[l];
    if (s.kind == LayerKind::Dense) {
      if (hook) hook->neurons(l, 0, g, h);
      mul_derivative_stacked(s.act, alpha, z, h, g);
      if (params) {
        gemm(MatMap<T>(gp, s.n_in, s.n_out), x.transpose(), g, accumulate);
        column_sums(VecMap<T>(gp + s.n_w1(), s.n_out), g, accumulate);
      }
      if (propagate) {
        ws.gtmp.resize(g.rows(), s.n_in);
        gemm(ws.gtmp, g, p.W1.transpose(), false);
        g.swap(ws.gtmp);
      }
    } else {
      if (hook) hook->neurons(l, 1, g, ws.out[l]);
      if (s.kind == LayerKind::Residual2) {
        ws.gh.resize(g.rows(), s.n_hidden);
        gemm(ws.gh, g, p.W2.transpose(), false);
        if (params) gemm(MatMap<T>(gp + s.n_w1() + s.n_b1(), s.n_hidden, s.n_out), h.transpose(), g, accumulate);
      } else {
        ws.gh = g;
      }
      if (hook) hook->neurons(l, 0, ws.gh, h);
      mul_derivative_stacked(s.act, alpha, z, h, ws.gh);
      if (params) {
        gemm(MatMap<T>(gp, s.n_in, s.inner_width()), x.transpose(), ws.gh, accumulate);
        column_sums(VecMap<T>(gp + s.n_w1(), s.n_b1()), ws.gh, accumulate);
      }
      if (propagate) gemm(g, ws.gh, p.W1.transpose(), true);
    }
  }
  if (input_grad) input_grad->swap(g);
}

// Rows per chunk so that one cached matrix stays near 2^20 values.
inline Index chunk_rows(const Architecture& a, Index n) {
  const Index rows = std::max<Index>(256, (Index(1) << 20) / std::max<Index>(1, a.max_width()));
  return std::min(n, rows);
}

// Full-batch J (mean loss + L2) and, if grad != nullptr, its gradient with respect to the parameters of
// layers first..last, written into grad[0 .. offsets[last+1]-offsets[first]). x is the input of layer
// `first` (the cached output of the frozen layers below it), so the cost covers layers first..L-1 only.
template <class T, class In, class Y>
T loss_and_grad(const Architecture& a, const T* theta, const In& x, const Y& y, Index first, Index last, T* grad,
                Workspace<T>& ws, const T* w = nullptr) {
  const Index n = x.rows();
  const Index base = a.offsets[first];
  const Index len = a.offsets[last + 1] - base;
  // Gradient kernels write with the full-vector layout; shift the pointer so the block lands at grad[0].
  T* gfull = grad ? grad - base : nullptr;
  (void)len;
  // the weighted mean when sample weights w are given: J = sum_n w_n l_n / sum_n w_n
  const T inv_n = w ? T(1) / std::accumulate(w, w + n, T(0)) : T(1) / T(n);
  long double total = 0;
  const Index step = chunk_rows(a, n);
  for (Index s = 0; s < n; s += step) {
    const Index m = std::min(step, n - s);
    CStridedMap<T> xs(x.data() + s * x.outerStride(), m, x.cols(), Eigen::OuterStride<>(x.outerStride()));
    CStridedMap<T> ys(y.data() + s * y.outerStride(), m, y.cols(), Eigen::OuterStride<>(y.outerStride()));
    forward(a, theta, xs, ws, first);
    total += loss_and_dout<T>(a.loss, ws.output(a.n_layers() - 1), ys, ws.dout, inv_n, w ? w + s : nullptr);
    if (grad) backward(a, theta, ws, ws.dout, first, first, last, gfull, /*accumulate=*/s > 0);
  }
  total += add_l2(a, theta, gfull, first, last);
  return static_cast<T>(total);
}

// Network output (logits for classification heads) in row chunks.
template <class T, class In>
void predict(const Architecture& a, const T* theta, const In& x, MatMap<T> out, Workspace<T>& ws, Index first = 0) {
  const Index n = x.rows();
  const Index step = chunk_rows(a, std::max<Index>(n, 1));
  for (Index s = 0; s < n; s += step) {
    const Index m = std::min(step, n - s);
    CStridedMap<T> xs(x.data() + s * x.outerStride(), m, x.cols(), Eigen::OuterStride<>(x.outerStride()));
    forward(a, theta, xs, ws, first);
    out.middleRows(s, m) = ws.output(a.n_layers() - 1);
  }
}

// Input of layer `layer` (the output of layer-1; x itself for layer 0) for all rows, in chunks.
// Input of layer `layer` (the output of layer-1) for x, the input of layer `from` <= layer.
template <class T, class In>
void layer_input(const Architecture& a, const T* theta, const In& x, Index from, Index layer, MatMap<T> out,
                 Workspace<T>& ws) {
  if (layer == from) {
    out = x;
    return;
  }
  const Index n = x.rows();
  const Index step = chunk_rows(a, std::max<Index>(n, 1));
  for (Index s = 0; s < n; s += step) {
    const Index m = std::min(step, n - s);
    CStridedMap<T> xs(x.data() + s * x.outerStride(), m, x.cols(), Eigen::OuterStride<>(x.outerStride()));
    forward(a, theta, xs, ws, from, layer - 1);
    out.middleRows(s, m) = ws.output(layer - 1);
  }
}

}  // namespace sensinet
