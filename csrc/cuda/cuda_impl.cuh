// The CUDA engine's private implementation (CudaNetwork<T>::Impl), shared by the files that define its
// methods: cuda_network.cu (construction, parameters, evaluation, residency), cuda_train.cu (the
// training loop, as train.hpp) and cuda_sensitivity.cu (the sensitivity sweep, as sensitivity.hpp).
#pragma once
#include "cuda_network.hpp"


#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda_check.hpp"
#include "device_buffer.hpp"
#include "kernels.hpp"
#include "shuffle.hpp"


namespace sensinet::cuda {

// ====================================================================================== GEMM

namespace detail {

// C (m x n) = alpha op(A) op(B) + beta C on row-major matrices with leading dimensions lda, ldb, ldc.
// cuBLAS is column-major: the row-major C is the column-major C^T = op(B)^T op(A)^T, so B and A swap
// places with the same transposition flags and the dimensions m and n swap.
template <class T>
void gemm(cublasHandle_t h, bool ta, bool tb, i64 m, i64 n, i64 k, T alpha, const T* A, i64 lda, const T* B, i64 ldb,
          T beta, T* C, i64 ldc) {
  if (m == 0 || n == 0) return;
  const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  if constexpr (std::is_same_v<T, float>)
    SENSINET_CUBLAS_CHECK(cublasSgemm_64(h, opB, opA, n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
  else
    SENSINET_CUBLAS_CHECK(cublasDgemm_64(h, opB, opA, n, m, k, &alpha, B, ldb, A, lda, &beta, C, ldc));
}

// Rows per chunk of the full-batch passes: one cached matrix near 2^22 values (the CPU engine uses 2^20;
// a GPU needs larger GEMMs to be busy). Chunking changes only the summation order of the loss.
inline i64 eval_chunk(const Architecture& a, i64 n) {
  const i64 rows = std::max<i64>(1024, (i64(1) << 22) / std::max<i64>(1, a.max_width()));
  return std::max<i64>(1, std::min(n, rows));
}

inline constexpr std::size_t kCublasWorkspace = std::size_t(32) << 20;  // recommended for Hopper
inline constexpr i64 kMinGraphSteps = 8;  // fewer full minibatch steps in a call: plain launches

// Per-layer caches of the last forward pass and the reverse-pass buffers.
template <class T>
struct Work {
  std::vector<DeviceBuffer<T>> z, h, out;
  DeviceBuffer<T> g, gtmp, gh;
  DeviceBuffer<double> rowloss, partial, reg;
  const T* x = nullptr;  // input of layer `first` of the last forward (not owned)
  i64 rows = 0, first = 0;

  // Room for `rows` rows from layer `from` up, and K stacked seeds in the reverse pass.
  void reserve(const Architecture& a, i64 rows_, i64 K, i64 from, i64 n_l2) {
    const i64 L = a.n_layers();
    z.resize(L);
    h.resize(L);
    out.resize(L);
    for (i64 l = from; l < L; ++l) {
      const LayerSpec& s = a.layers[l];
      z[l].reserve(rows_ * s.inner_width(), "the pre-activation cache");
      h[l].reserve(rows_ * s.inner_width(), "the activation cache");
      if (s.kind != LayerKind::Dense) out[l].reserve(rows_ * s.n_out, "the residual output cache");
    }
    const i64 big = K * rows_ * a.max_width();
    g.reserve(big, "the reverse-pass buffer");
    gtmp.reserve(big, "the reverse-pass buffer");
    gh.reserve(big, "the reverse-pass buffer");
    rowloss.reserve(std::max<i64>(rows_, 1), "the per-sample losses");
    partial.reserve(kern::kMaxSlabs * K * a.max_width(), "the column-reduction scratch");
    reg.reserve(kern::kL2Blocks * std::max<i64>(n_l2, 1), "the L2 partial sums");
  }
  void release() {
    z.clear();
    h.clear();
    out.clear();
    g.release();
    gtmp.release();
    gh.release();
    rowloss.release();
    partial.release();
    reg.release();
  }
  std::size_t bytes() const {
    std::size_t b = 0;
    for (const auto& v : {&z, &h, &out})
      for (const auto& d : *v) b += d.capacity() * sizeof(T);
    b += (g.capacity() + gtmp.capacity() + gh.capacity()) * sizeof(T);
    b += (rowloss.capacity() + partial.capacity() + reg.capacity()) * sizeof(double);
    return b;
  }
  const T* output(const Architecture& a, i64 l) const { return a.layers[l].kind == LayerKind::Dense ? h[l].data() : out[l].data(); }
  const T* input(const Architecture& a, i64 l) const { return l == first ? x : output(a, l - 1); }
};

struct L2Slot {
  i64 layer, offset, count;
  double lam;
};

// Sensitivity hook: reduced g * v of the requested sites into per-site device accumulators.
struct SensHook {
  const std::vector<Site>* sites = nullptr;
  std::vector<double*> acc;
  i64 K = 1;
  int reduce = 0;
};

}  // namespace detail

using namespace detail;

// ====================================================================================== the engine

template <class T>
struct CudaNetwork<T>::Impl {
  Architecture a;
  int device;
  Stream stream;
  DeviceBuffer<char> blas_ws;  // declared before the handle: freed after it is destroyed
  CublasHandle blas;
  DeviceBuffer<T> theta;
  Work<T> ev, tr;  // caches of evaluations and of the training loop (graph-captured: never reallocated mid-call)
  DeviceBuffer<T> x_ev, y_ev, theta_ev, grad_ev, out_ev;
  DeviceBuffer<T> x_tr, y_tr, x_val, y_val, xb, yb, spare, grad_tr, st_m, st_v;
  DeviceBuffer<i64> idx;
  DeviceBuffer<StepControl> ctl;
  DeviceBuffer<double> losses, scal, sens_acc;
  DeviceBuffer<unsigned long long> bits;  // packed ReLU patterns
  GraphExec graph[2];
  std::vector<L2Slot> l2;
  TransferStats stats;
  // Device copies of prepared host arrays by key (most recently used last) and optimizer states by key.
  struct Resident {
    i64 key = 0, count = 0;
    DeviceBuffer<T> buf;
  };
  struct State {
    i64 key = 0;
    DeviceBuffer<T> m, v;
  };
  static constexpr std::size_t kMaxResident = 8;  // >= the 4 arrays one call uses, so none evicts its own
  std::vector<Resident> resident;
  std::vector<State> states;
  bool tf32 = false;
  PinnedStaging staging;

  Impl(Architecture d, int dev) : a(std::move(d)), device(dev) {
    SENSINET_CUBLAS_CHECK(cublasSetStream(blas.get(), stream.get()));
    // No TF32: float32 GEMMs are full single precision, as PyTorch's default.
    SENSINET_CUBLAS_CHECK(cublasSetMathMode(blas.get(), CUBLAS_DEFAULT_MATH));
    // A user workspace: cuBLAS then allocates nothing inside captured graphs.
    blas_ws.reserve(kCublasWorkspace, "the cuBLAS workspace");
    SENSINET_CUBLAS_CHECK(cublasSetWorkspace(blas.get(), blas_ws.data(), kCublasWorkspace));
    theta.reserve(a.n_params(), "the parameter vector");
    SENSINET_CUDA_CHECK(cudaMemsetAsync(theta.data(), 0, sizeof(T) * a.n_params(), st()));
    for (i64 l = 0; l < a.n_layers(); ++l) {
      const LayerSpec& s = a.layers[l];
      if (s.l2 == 0.0) continue;
      l2.push_back({l, a.offsets[l], s.n_w1(), s.l2});
      if (s.n_w2()) l2.push_back({l, a.offsets[l] + s.n_w1() + s.n_b1(), s.n_w2(), s.l2});
    }
    stream.sync();
  }

  cudaStream_t st() const { return stream.get(); }
  i64 n_l2() const { return static_cast<i64>(l2.size()); }

  // ---------------------------------------------------------------- transfers (counted)
  void count(Xfer kind, bool h2d, i64 bytes) {
    if (h2d) {
      stats.h2d_calls += 1;
      stats.h2d_bytes += bytes;
      if (kind == Xfer::Data) stats.h2d_data_bytes += bytes;
      if (kind == Xfer::Params) stats.h2d_param_bytes += bytes;
      if (kind == Xfer::State) stats.h2d_state_bytes += bytes;
    } else {
      stats.d2h_calls += 1;
      stats.d2h_bytes += bytes;
      if (kind == Xfer::Params) stats.d2h_param_bytes += bytes;
      if (kind == Xfer::State) stats.d2h_state_bytes += bytes;
    }
  }
  // Host -> device through the pinned staging buffer (large pageable arrays) or directly. On return the
  // host array may change: its contents are in pinned memory or on the device.
  void h2d(void* dst, const void* src, std::size_t bytes) {
    if (bytes < PinnedStaging::kMin || !staging.ok()) {
      SENSINET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st()));
      return;
    }
    const char* s = static_cast<const char*>(src);
    char* d = static_cast<char*>(dst);
    int h = 0;
    for (std::size_t off = 0; off < bytes; off += PinnedStaging::kHalf, h ^= 1) {
      const std::size_t n = std::min(PinnedStaging::kHalf, bytes - off);
      SENSINET_CUDA_CHECK(cudaEventSynchronize(staging.event(h)));  // this half's last transfer is done
      std::memcpy(staging.half(h), s + off, n);
      SENSINET_CUDA_CHECK(cudaMemcpyAsync(d + off, staging.half(h), n, cudaMemcpyHostToDevice, st()));
      SENSINET_CUDA_CHECK(cudaEventRecord(staging.event(h), st()));
    }
  }
  // Device -> host through the staging buffer (large arrays; done on return) or directly (the caller
  // synchronizes the stream before reading).
  void d2h(void* dst, const void* src, std::size_t bytes) {
    if (bytes < PinnedStaging::kMin || !staging.ok()) {
      SENSINET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st()));
      return;
    }
    const char* s = static_cast<const char*>(src);
    char* d = static_cast<char*>(dst);
    const std::size_t chunk = PinnedStaging::kHalf;
    const std::size_t chunks = (bytes + chunk - 1) / chunk;
    // chunk i goes into half i % 2; it is copied out once chunk i + 1 is on its way
    for (std::size_t i = 0; i <= chunks; ++i) {
      if (i < chunks) {
        const int h = static_cast<int>(i & 1);
        SENSINET_CUDA_CHECK(cudaMemcpyAsync(staging.half(h), s + i * chunk, std::min(chunk, bytes - i * chunk),
                                            cudaMemcpyDeviceToHost, st()));
        SENSINET_CUDA_CHECK(cudaEventRecord(staging.event(h), st()));
      }
      if (i > 0) {
        const std::size_t j = i - 1;
        const int h = static_cast<int>(j & 1);
        SENSINET_CUDA_CHECK(cudaEventSynchronize(staging.event(h)));
        std::memcpy(d + j * chunk, staging.half(h), std::min(chunk, bytes - j * chunk));
      }
    }
  }

  void upload(T* dst, const T* src, i64 count_, Xfer kind = Xfer::Data) {
    if (count_ == 0) return;
    h2d(dst, src, sizeof(T) * count_);
    count(kind, true, static_cast<i64>(sizeof(T) * count_));
  }
  void upload_bytes(void* dst, const void* src, std::size_t bytes) {
    if (bytes == 0) return;
    h2d(dst, src, bytes);
    count(Xfer::Other, true, static_cast<i64>(bytes));
  }
  template <class U>
  void download(U* dst, const U* src, i64 count_, Xfer kind = Xfer::Other) {
    if (count_ == 0) return;
    d2h(dst, src, sizeof(U) * count_);
    count(kind, false, static_cast<i64>(sizeof(U) * count_));
  }

  // The device copy of host data: the resident copy of `key` (uploaded on first use), or, for key 0, an
  // upload into `scratch`.
  const T* data_in(DeviceBuffer<T>& scratch, i64 key, const T* host, i64 n, const char* what) {
    if (key <= 0) {
      scratch.reserve(n, what);
      upload(scratch.data(), host, n);
      return scratch.data();
    }
    for (auto it = resident.begin(); it != resident.end(); ++it) {
      if (it->key == key && it->count == n) {
        std::rotate(it, it + 1, resident.end());
        return resident.back().buf.data();
      }
    }
    Resident r;
    try {
      r.buf.reserve(n, what);
    } catch (const OutOfMemory&) {  // the kept copies of other data go first
      resident.clear();
      r.buf.reserve(n, what);
    }
    upload(r.buf.data(), host, n);
    r.key = key;
    r.count = n;
    if (resident.size() >= kMaxResident) resident.erase(resident.begin());
    resident.push_back(std::move(r));
    return resident.back().buf.data();
  }
  State* find_state(i64 key) {
    for (State& x : states)
      if (x.key == key) return &x;
    return nullptr;
  }
  std::size_t resident_bytes() const {
    std::size_t b = 0;
    for (const Resident& r : resident) b += r.buf.capacity() * sizeof(T);
    for (const State& x : states) b += (x.m.capacity() + x.v.capacity()) * sizeof(T);
    return b;
  }
  void copy_d2d(T* dst, const T* src, i64 count) {
    if (count == 0 || dst == src) return;
    SENSINET_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(T) * count, cudaMemcpyDeviceToDevice, st()));
  }

  void gemm_(bool ta, bool tb, i64 m, i64 n, i64 k, T alpha, const T* A, i64 lda, const T* B, i64 ldb, T beta, T* C,
             i64 ldc) {
    gemm<T>(blas.get(), ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  // ---------------------------------------------------------------- forward (network.hpp: forward)
  // Layers first..last on x (m rows, the input of layer `first`), keeping every cache in w.
  void forward(Work<T>& w, const T* th, const T* x, i64 m, i64 first, i64 last) {
    w.x = x;
    w.rows = m;
    w.first = first;
    for (i64 l = first; l <= last; ++l) {
      const LayerSpec& s = a.layers[l];
      const T* p = th + a.offsets[l];
      const T* in = w.input(a, l);
      const i64 inner = s.inner_width();
      T* z = w.z[l].data();
      T* h = w.h[l].data();
      gemm_(false, false, m, inner, s.n_in, T(1), in, s.n_in, p, inner, T(0), z, inner);
      const T* b1 = p + s.n_w1();
      if (s.kind == LayerKind::Dense) {
        kern::bias_activate<T>(st(), z, b1, h, m, inner, static_cast<int>(s.act), T(s.alpha), nullptr, nullptr);
      } else if (s.kind == LayerKind::Residual1) {
        kern::bias_activate<T>(st(), z, b1, h, m, inner, static_cast<int>(s.act), T(s.alpha), in, w.out[l].data());
      } else {
        kern::bias_activate<T>(st(), z, b1, h, m, inner, static_cast<int>(s.act), T(s.alpha), nullptr, nullptr);
        T* o = w.out[l].data();
        copy_d2d(o, in, m * s.n_out);
        gemm_(false, false, m, s.n_out, s.n_hidden, T(1), h, s.n_hidden, p + s.n_w1() + s.n_b1(), s.n_out, T(1), o,
              s.n_out);
      }
    }
  }

  void hook_call(Work<T>& w, SensHook* hook, i64 layer, int part, const T* g, const T* v, i64 width) {
    if (!hook) return;
    const auto& sites = *hook->sites;
    for (std::size_t i = 0; i < sites.size(); ++i)
      if (sites[i].layer == layer && sites[i].part == part)
        kern::sensitivity_reduce<T>(st(), g, v, w.rows, width, hook->K, hook->reduce, hook->acc[i], w.partial.data());
  }

  // ---------------------------------------------------------------- reverse pass (network.hpp: backward)
  // w.g holds dJ/d(output) for K stacked seeds over the w.rows cached rows and is consumed. Parameter
  // gradients of layers gfirst..glast go to grad (full layout; accumulate: added; K must be 1). With
  // input_grad, w.g ends as dJ/d(input of layer stop).
  void backward(Work<T>& w, const T* th, i64 K, i64 stop, i64 gfirst, i64 glast, T* grad, bool accumulate,
                bool input_grad, SensHook* hook) {
    const i64 m = w.rows, R = K * m;
    const T beta = accumulate ? T(1) : T(0);
    for (i64 l = a.n_layers() - 1; l >= stop; --l) {
      const LayerSpec& s = a.layers[l];
      const T* p = th + a.offsets[l];
      const T* x = w.input(a, l);
      const bool params = grad && l >= gfirst && l <= glast;
      const bool propagate = l > stop || input_grad;
      T* gp = params ? grad + a.offsets[l] : nullptr;
      const T alpha = T(s.alpha);
      const T* z = w.z[l].data();
      const T* h = w.h[l].data();
      const i64 inner = s.inner_width();
      if (s.kind == LayerKind::Dense) {
        hook_call(w, hook, l, 0, w.g.data(), h, inner);
        kern::mul_derivative<T>(st(), static_cast<int>(s.act), alpha, z, h, w.g.data(), w.g.data(), R * inner, m * inner);
        if (params) {
          gemm_(true, false, s.n_in, s.n_out, m, T(1), x, s.n_in, w.g.data(), s.n_out, beta, gp, s.n_out);
          kern::colsum<T>(st(), w.g.data(), m, s.n_out, gp + s.n_w1(), accumulate, w.partial.data());
        }
        if (propagate) {
          gemm_(false, true, R, s.n_in, s.n_out, T(1), w.g.data(), s.n_out, p, s.n_out, T(0), w.gtmp.data(), s.n_in);
          w.g.swap(w.gtmp);
        }
      } else {
        hook_call(w, hook, l, 1, w.g.data(), w.out[l].data(), s.n_out);
        if (s.kind == LayerKind::Residual2) {
          const T* W2 = p + s.n_w1() + s.n_b1();
          gemm_(false, true, R, s.n_hidden, s.n_out, T(1), w.g.data(), s.n_out, W2, s.n_out, T(0), w.gh.data(),
                s.n_hidden);
          if (params)
            gemm_(true, false, s.n_hidden, s.n_out, m, T(1), h, s.n_hidden, w.g.data(), s.n_out, beta,
                  gp + s.n_w1() + s.n_b1(), s.n_out);
          hook_call(w, hook, l, 0, w.gh.data(), h, inner);
          kern::mul_derivative<T>(st(), static_cast<int>(s.act), alpha, z, h, w.gh.data(), w.gh.data(), R * inner, m * inner);
        } else {
          // gh = g (the skip connection keeps g): the hook sees it before the derivative.
          hook_call(w, hook, l, 0, w.g.data(), h, inner);
          kern::mul_derivative<T>(st(), static_cast<int>(s.act), alpha, z, h, w.g.data(), w.gh.data(), R * inner, m * inner);
        }
        if (params) {
          gemm_(true, false, s.n_in, inner, m, T(1), x, s.n_in, w.gh.data(), inner, beta, gp, inner);
          kern::colsum<T>(st(), w.gh.data(), m, inner, gp + s.n_w1(), accumulate, w.partial.data());
        }
        if (propagate)
          gemm_(false, true, R, s.n_in, inner, T(1), w.gh.data(), inner, p, inner, T(1), w.g.data(), s.n_in);
      }
    }
  }

  // L2 terms of all layers into w.reg (one slot of kL2Blocks partial sums per weight matrix); with grad,
  // adds l2 * W to the gradient of layers gfirst..glast (network.hpp: add_l2).
  void l2_terms(Work<T>& w, const T* th, T* grad, i64 gfirst, i64 glast) {
    for (std::size_t j = 0; j < l2.size(); ++j) {
      const L2Slot& s = l2[j];
      T* g = (grad && s.layer >= gfirst && s.layer <= glast) ? grad + s.offset : nullptr;
      kern::l2_terms<T>(st(), th + s.offset, s.count, T(s.lam), g, w.reg.data() + j * kern::kL2Blocks);
    }
  }

  // Objective J of (x, y) (n rows, x the input of layer `from`) at th, without gradient: chunked forward,
  // per-chunk losses summed on the host in long double as the CPU engine does.
  double objective(const T* th, const T* x, const T* y, i64 n, i64 from) {
    const i64 L = a.n_layers(), K = a.n_outputs(), din = a.layers[from].n_in;
    const i64 step = eval_chunk(a, n);
    ev.reserve(a, step, 1, from, n_l2());
    const i64 chunks = (n + step - 1) / step;
    scal.reserve(chunks + 1, "the loss scalars");
    const T inv_n = T(1) / T(n);
    for (i64 c = 0, s = 0; s < n; ++c, s += step) {
      const i64 m = std::min(step, n - s);
      forward(ev, th, x + s * din, m, from, L - 1);
      kern::head_loss<T>(st(), static_cast<int>(a.loss), ev.output(a, L - 1), y + s * K, m, K, inv_n, ev.g.data(), ev.rowloss.data());
      kern::finalize_loss<T>(st(), ev.rowloss.data(), m, kern::head_scale<T>(static_cast<int>(a.loss), K, inv_n), nullptr, 0,
                             scal.data() + c, nullptr, nullptr, {});
    }
    l2_terms(ev, th, nullptr, 0, -1);
    kern::finalize_loss<T>(st(), nullptr, 0, 0.0, ev.reg.data(), n_l2() * kern::kL2Blocks, scal.data() + chunks,
                           nullptr, nullptr, {});
    std::vector<double> h(chunks + 1);
    download(h.data(), scal.data(), chunks + 1);
    stream.sync();
    long double total = 0;
    for (i64 c = 0; c < chunks; ++c) total += static_cast<T>(h[c]);
    total += static_cast<T>(h[chunks]);
    return static_cast<double>(static_cast<T>(total));
  }

  std::size_t bytes() const {
    std::size_t b = ev.bytes() + tr.bytes() + blas_ws.capacity();
    for (const auto* d : {&theta, &x_ev, &y_ev, &theta_ev, &grad_ev, &out_ev, &x_tr, &y_tr, &x_val, &y_val, &xb, &yb,
                          &spare, &grad_tr, &st_m, &st_v})
      b += d->capacity() * sizeof(T);
    b += idx.capacity() * sizeof(i64) + ctl.capacity() * sizeof(StepControl);
    b += (losses.capacity() + scal.capacity() + sens_acc.capacity()) * sizeof(double);
    b += bits.capacity() * sizeof(unsigned long long);
    return b + resident_bytes();
  }

  void free_workspace() {
    ev.release();
    tr.release();
    for (auto* d : {&x_ev, &y_ev, &theta_ev, &grad_ev, &out_ev, &x_tr, &y_tr, &x_val, &y_val, &xb, &yb, &spare,
                    &grad_tr, &st_m, &st_v})
      d->release();
    idx.release();
    ctl.release();
    losses.release();
    scal.release();
    sens_acc.release();
    bits.release();
    resident.clear();
  }

  TrainOutcome train(const T* xh, const T* yh, i64 n, const T* xvh, const T* yvh, i64 nv, const OptConfig& oc,
                     T* sm, T* sv, i64 t0, const DeviceTrainConfig& tc, const PollFn& poll);
};

}  // namespace sensinet::cuda
