// The CUDA engine (see cuda_network.hpp): device memory and streams, cuBLAS GEMMs on row-major
// matrices, forward / reverse passes mirroring network.hpp, the minibatch training loop mirroring
// train.hpp, and the sensitivity sweep mirroring sensitivity.hpp.
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

// ====================================================================================== errors, memory

std::string format_bytes(std::size_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[96];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%zu bytes", bytes);
  else
    std::snprintf(buf, sizeof buf, "%.2f %s (%zu bytes)", v, units[u], bytes);
  return buf;
}

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

namespace {

std::string where(const char* expr, const char* file, int line) {
  std::string f = file;
  const auto slash = f.find_last_of('/');
  if (slash != std::string::npos) f = f.substr(slash + 1);
  return std::string(" in `") + expr + "` (" + f + ":" + std::to_string(line) + ")";
}

// "device 0 (NVIDIA H100 80GB HBM3): 1.20 GiB free of 79.19 GiB"
std::string device_memory_text() {
  int dev = -1;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return "device ?";
  }
  std::string text = "device " + std::to_string(dev);
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, dev) == cudaSuccess) text += std::string(" (") + p.name + ")";
  std::size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    text += ": " + format_bytes(free_b) + " free of " + format_bytes(total_b);
  cudaGetLastError();
  return text;
}

std::atomic<std::size_t> g_bytes_in_use{0};

}  // namespace

void throw_cuda(cudaError_t e, const char* expr, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so that the next call starts clean
  const std::string msg = std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")" +
                          where(expr, file, line);
  if (e == cudaErrorMemoryAllocation) throw OutOfMemory("CUDA out of memory: " + msg + "; " + device_memory_text());
  throw CudaError(msg);
}

void throw_cublas(cublasStatus_t s, const char* expr, const char* file, int line) {
  const std::string msg = std::string("cuBLAS error ") + cublas_status_name(s) + where(expr, file, line);
  if (s == CUBLAS_STATUS_ALLOC_FAILED) throw OutOfMemory("CUDA out of memory: " + msg + "; " + device_memory_text());
  throw CudaError(msg);
}

void* device_malloc(std::size_t bytes, const char* what) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw OutOfMemory("CUDA out of memory: cannot allocate " + format_bytes(bytes) + " for " + what + " on " +
                      device_memory_text());
  }
  if (e != cudaSuccess) throw_cuda(e, "cudaMalloc", __FILE__, __LINE__);
  g_bytes_in_use += bytes;
  return p;
}

void device_free(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  cudaFree(p);
  g_bytes_in_use -= bytes;
}

std::size_t device_bytes_in_use() noexcept { return g_bytes_in_use.load(); }

// ====================================================================================== GEMM

namespace {

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
i64 eval_chunk(const NetDesc& a, i64 n) {
  const i64 rows = std::max<i64>(1024, (i64(1) << 22) / std::max<i64>(1, a.max_width()));
  return std::max<i64>(1, std::min(n, rows));
}

constexpr std::size_t kCublasWorkspace = std::size_t(32) << 20;  // recommended for Hopper
constexpr i64 kMinGraphSteps = 8;  // fewer full minibatch steps in a call: plain launches

// Per-layer caches of the last forward pass and the reverse-pass buffers.
template <class T>
struct Work {
  std::vector<DeviceBuffer<T>> z, h, out;
  DeviceBuffer<T> g, gtmp, gh;
  DeviceBuffer<double> rowloss, partial, reg;
  const T* x = nullptr;  // input of layer `first` of the last forward (not owned)
  i64 rows = 0, first = 0;

  // Room for `rows` rows from layer `from` up, and K stacked seeds in the reverse pass.
  void reserve(const NetDesc& a, i64 rows_, i64 K, i64 from, i64 n_l2) {
    const i64 L = a.n_layers();
    z.resize(L);
    h.resize(L);
    out.resize(L);
    for (i64 l = from; l < L; ++l) {
      const LayerDesc& s = a.layers[l];
      z[l].reserve(rows_ * s.inner_width(), "the pre-activation cache");
      h[l].reserve(rows_ * s.inner_width(), "the activation cache");
      if (s.kind != kDense) out[l].reserve(rows_ * s.n_out, "the residual output cache");
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
  const T* output(const NetDesc& a, i64 l) const { return a.layers[l].kind == kDense ? h[l].data() : out[l].data(); }
  const T* input(const NetDesc& a, i64 l) const { return l == first ? x : output(a, l - 1); }
};

struct L2Slot {
  i64 layer, offset, count;
  double lam;
};

// Sensitivity hook: reduced g * v of the requested sites into per-site device accumulators.
struct SensHook {
  const std::vector<SiteDesc>* sites = nullptr;
  std::vector<double*> acc;
  i64 K = 1;
  int reduce = 0;
};

}  // namespace

// ====================================================================================== the engine

template <class T>
struct CudaNetwork<T>::Impl {
  NetDesc a;
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

  Impl(NetDesc d, int dev) : a(std::move(d)), device(dev) {
    SENSINET_CUBLAS_CHECK(cublasSetStream(blas.get(), stream.get()));
    // No TF32: float32 GEMMs are full single precision, as PyTorch's default.
    SENSINET_CUBLAS_CHECK(cublasSetMathMode(blas.get(), CUBLAS_DEFAULT_MATH));
    // A user workspace: cuBLAS then allocates nothing inside captured graphs.
    blas_ws.reserve(kCublasWorkspace, "the cuBLAS workspace");
    SENSINET_CUBLAS_CHECK(cublasSetWorkspace(blas.get(), blas_ws.data(), kCublasWorkspace));
    theta.reserve(a.n_params(), "the parameter vector");
    SENSINET_CUDA_CHECK(cudaMemsetAsync(theta.data(), 0, sizeof(T) * a.n_params(), st()));
    for (i64 l = 0; l < a.n_layers(); ++l) {
      const LayerDesc& s = a.layers[l];
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
      const LayerDesc& s = a.layers[l];
      const T* p = th + a.offsets[l];
      const T* in = w.input(a, l);
      const i64 inner = s.inner_width();
      T* z = w.z[l].data();
      T* h = w.h[l].data();
      gemm_(false, false, m, inner, s.n_in, T(1), in, s.n_in, p, inner, T(0), z, inner);
      const T* b1 = p + s.n_w1();
      if (s.kind == kDense) {
        kern::bias_activate<T>(st(), z, b1, h, m, inner, s.act, T(s.alpha), nullptr, nullptr);
      } else if (s.kind == kResidual1) {
        kern::bias_activate<T>(st(), z, b1, h, m, inner, s.act, T(s.alpha), in, w.out[l].data());
      } else {
        kern::bias_activate<T>(st(), z, b1, h, m, inner, s.act, T(s.alpha), nullptr, nullptr);
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
      const LayerDesc& s = a.layers[l];
      const T* p = th + a.offsets[l];
      const T* x = w.input(a, l);
      const bool params = grad && l >= gfirst && l <= glast;
      const bool propagate = l > stop || input_grad;
      T* gp = params ? grad + a.offsets[l] : nullptr;
      const T alpha = T(s.alpha);
      const T* z = w.z[l].data();
      const T* h = w.h[l].data();
      const i64 inner = s.inner_width();
      if (s.kind == kDense) {
        hook_call(w, hook, l, 0, w.g.data(), h, inner);
        kern::mul_derivative<T>(st(), s.act, alpha, z, h, w.g.data(), w.g.data(), R * inner, m * inner);
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
        if (s.kind == kResidual2) {
          const T* W2 = p + s.n_w1() + s.n_b1();
          gemm_(false, true, R, s.n_hidden, s.n_out, T(1), w.g.data(), s.n_out, W2, s.n_out, T(0), w.gh.data(),
                s.n_hidden);
          if (params)
            gemm_(true, false, s.n_hidden, s.n_out, m, T(1), h, s.n_hidden, w.g.data(), s.n_out, beta,
                  gp + s.n_w1() + s.n_b1(), s.n_out);
          hook_call(w, hook, l, 0, w.gh.data(), h, inner);
          kern::mul_derivative<T>(st(), s.act, alpha, z, h, w.gh.data(), w.gh.data(), R * inner, m * inner);
        } else {
          // gh = g (the skip connection keeps g): the hook sees it before the derivative.
          hook_call(w, hook, l, 0, w.g.data(), h, inner);
          kern::mul_derivative<T>(st(), s.act, alpha, z, h, w.g.data(), w.gh.data(), R * inner, m * inner);
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
      kern::head_loss<T>(st(), a.loss, ev.output(a, L - 1), y + s * K, m, K, inv_n, ev.g.data(), ev.rowloss.data());
      kern::finalize_loss<T>(st(), ev.rowloss.data(), m, kern::head_scale<T>(a.loss, K, inv_n), nullptr, 0,
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
    resident.clear();
  }

  TrainOutcome train(const T* xh, const T* yh, i64 n, const T* xvh, const T* yvh, i64 nv, const OptSettings& oc,
                     T* sm, T* sv, i64 t0, const TrainSettings& tc, const PollFn& poll);
};

// ====================================================================================== training loop

template <class T>
TrainOutcome CudaNetwork<T>::Impl::train(const T* xh, const T* yh, i64 n, const T* xvh, const T* yvh, i64 nv,
                                         const OptSettings& oc, T* sm, T* sv, i64 t0, const TrainSettings& tc,
                                         const PollFn& poll) {
  const i64 L = a.n_layers(), K = a.n_outputs(), P = a.n_params();
  const i64 first = tc.first, last = tc.last < 0 ? L - 1 : tc.last;
  const i64 in_layer = tc.input_layer < 0 ? first : tc.input_layer;
  if (in_layer > first) throw std::invalid_argument("input_layer: expected <= first");
  const i64 off = a.offsets[first], len = a.offsets[last + 1] - off;
  const i64 d = a.layers[first].n_in;
  const i64 bs = std::min(tc.batch_size, n);
  const bool adam = oc.kind == 1;
  TrainOutcome res;
  res.t = t0;

  // ---- data (resident when keyed: no upload on later calls) and the optimizer state
  const T* ysrc = data_in(y_tr, tc.y_key, yh, n * K, "the training targets");
  const T* xsrc = nullptr;
  if (in_layer == first) {
    xsrc = data_in(x_tr, tc.x_key, xh, n * d, "the training inputs");
  } else {
    // The block input: layers in_layer..first-1 evaluated once on the device.
    const i64 din = a.layers[in_layer].n_in;
    const T* x0 = data_in(x_ev, tc.x_key, xh, n * din, "the training inputs");
    x_tr.reserve(n * d, "the block input");
    const i64 step = eval_chunk(a, n);
    ev.reserve(a, step, 1, in_layer, n_l2());
    for (i64 s = 0; s < n; s += step) {
      const i64 m = std::min(step, n - s);
      forward(ev, theta.data(), x0 + s * din, m, in_layer, first - 1);
      copy_d2d(x_tr.data() + s * d, ev.output(a, first - 1), m * d);
    }
    xsrc = x_tr.data();
  }
  const bool has_val = xvh != nullptr && nv > 0;
  const T *xv = nullptr, *yv = nullptr;
  if (has_val) {
    xv = data_in(x_val, tc.xv_key, xvh, nv * a.n_inputs(), "the validation inputs");
    yv = data_in(y_val, tc.yv_key, yvh, nv * K, "the validation targets");
  }
  spare.reserve(P, "the second parameter buffer");
  grad_tr.reserve(P, "the gradient");
  copy_d2d(spare.data(), theta.data(), P);
  T *sm_d = nullptr, *sv_d = nullptr;
  if (tc.state_key > 0) {
    State* s = find_state(tc.state_key);
    const bool fresh = s == nullptr;
    if (fresh) {
      State x;
      x.m.reserve(P, "the optimizer state");
      x.v.reserve(P, "the optimizer state");
      x.key = tc.state_key;
      states.push_back(std::move(x));
      s = &states.back();
    }
    if (fresh || tc.state_upload) {
      upload(s->m.data(), sm, P, Xfer::State);
      upload(s->v.data(), sv, P, Xfer::State);
    }
    sm_d = s->m.data();
    sv_d = s->v.data();
  } else {
    st_m.reserve(P, "the optimizer state");
    st_v.reserve(P, "the optimizer state");
    upload(st_m.data(), sm, P, Xfer::State);
    upload(st_v.data(), sv, P, Xfer::State);
    sm_d = st_m.data();
    sv_d = st_v.data();
  }
  tr.reserve(a, bs, 1, first, n_l2());
  xb.reserve(bs * d, "the minibatch inputs");
  yb.reserve(bs * K, "the minibatch targets");
  const i64 per_epoch = (n + bs - 1) / bs;
  losses.reserve(per_epoch, "the step losses");
  ctl.reserve(1, "the step control");
  idx.reserve(n, "the permutation");
  scal.reserve(1, "the loss scalars");
  kern::init_control(st(), ctl.data(), t0);

  std::vector<std::ptrdiff_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::ptrdiff_t(0));
  static_assert(sizeof(std::ptrdiff_t) == sizeof(i64), "the permutation is uploaded as 64-bit indices");
  std::mt19937_64 rng(tc.seed);
  if (!tc.shuffle) upload_bytes(idx.data(), perm.data(), sizeof(i64) * n);

  kern::StepOpt so;
  so.counts_steps = adam || oc.momentum != 0.0;
  so.adam = adam;
  so.beta1 = oc.beta1;
  so.beta2 = oc.beta2;
  so.batch = bs;
  const T lr = T(oc.lr), mu = T(oc.momentum), b1 = T(oc.beta1), b2 = T(oc.beta2), eps = T(oc.eps);

  T* buf[2] = {theta.data(), spare.data()};
  // One minibatch step of m rows reading the weights in `cur` and writing them to `nxt` (train.hpp's
  // loop body). Everything that changes from step to step is read on the device, so the same launches
  // can be captured once and replayed.
  auto step_ops = [&](const T* cur, T* nxt, i64 m) {
    kern::gather_rows<T>(st(), xsrc, d, ysrc, K, idx.data(), ctl.data(), m, xb.data(), yb.data());
    forward(tr, cur, xb.data(), m, first, L - 1);
    const T inv = T(1) / T(m);
    kern::head_loss<T>(st(), a.loss, tr.output(a, L - 1), yb.data(), m, K, inv, tr.g.data(), tr.rowloss.data());
    backward(tr, cur, 1, first, first, last, grad_tr.data(), false, false, nullptr);
    l2_terms(tr, cur, grad_tr.data(), first, last);
    kern::finalize_loss<T>(st(), tr.rowloss.data(), m, kern::head_scale<T>(a.loss, K, inv), tr.reg.data(),
                           n_l2() * kern::kL2Blocks, nullptr, ctl.data(), losses.data(), so);
    if (adam)
      kern::adam_step<T>(st(), cur + off, grad_tr.data() + off, nxt + off, sm_d + off, sv_d + off, len,
                         lr, b1, b2, eps, ctl.data());
    else
      kern::sgd_step<T>(st(), cur + off, grad_tr.data() + off, nxt + off, sm_d + off, len, lr, mu,
                        oc.nesterov, ctl.data());
  };

  // CUDA graphs: one per parity of the double buffer, captured after the first (eager) full step.
  i64 full_steps = (n / bs) * tc.epochs;
  if (tc.max_steps >= 0) full_steps = std::min(full_steps, tc.max_steps);
  const bool use_graphs = tc.graphs && full_steps >= kMinGraphSteps;
  bool graphs_ready = false;
  auto capture = [&](int par) {
    cudaGraph_t g = nullptr;
    SENSINET_CUDA_CHECK(cudaStreamBeginCapture(st(), cudaStreamCaptureModeThreadLocal));
    try {
      step_ops(buf[par], buf[1 - par], bs);
    } catch (...) {
      cudaStreamEndCapture(st(), &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();
      throw;
    }
    SENSINET_CUDA_CHECK(cudaStreamEndCapture(st(), &g));
    graph[par].instantiate(g);
  };
  struct GraphReset {
    GraphExec* g;
    ~GraphReset() {
      g[0].reset();
      g[1].reset();
    }
  } graph_reset{graph};

  // ---- host bookkeeping (train.hpp's loop variables)
  int par = 0;        // cur = buf[par], nxt = buf[1 - par]
  i64 launched = 0;   // steps launched in this call
  i64 sync_step = 0;  // launched when par was last reset to 0 by a weight sync
  i64 epoch_start = 0, read_upto = 0, seen = 0, last_m = 0;
  long double sum = 0;
  bool stop = false, diverged = false;
  i64 div_at = -1;
  StepControl hc{};
  std::vector<double> h_losses(static_cast<std::size_t>(per_epoch));

  // Waits for the device, reads the step losses launched so far in this epoch and the divergence flag.
  auto read_status = [&]() {
    const i64 k = launched - epoch_start;
    download(&hc, ctl.data(), 1);
    if (k > read_upto) download(h_losses.data() + read_upto, losses.data() + read_upto, k - read_upto);
    stream.sync();
    const i64 lim = hc.diverged_at >= 0 ? std::min(k, hc.diverged_at - epoch_start) : k;
    for (i64 i = read_upto; i < lim; ++i) {
      const i64 m = std::min(bs, n - i * bs);
      const T l = static_cast<T>(h_losses[i]);
      sum += static_cast<long double>(l) * m;
      seen += m;
      res.last_loss = l;
    }
    read_upto = std::max(read_upto, lim);
    if (hc.diverged_at >= 0) {
      diverged = true;
      div_at = hc.diverged_at;
    }
  };
  // Makes `theta` hold the newest weights (the previous ones stay in the spare buffer for a revert).
  auto weight_sync = [&]() {
    if (par == 1) {
      kern::swap_ranges<T>(st(), theta.data() + off, spare.data() + off, len);
      par = 0;
    }
    sync_step = launched;
  };
  auto do_poll = [&](const PollInfo& p) {
    if (tc.poll_reads_weights && p.scheduled) weight_sync();
    stream.sync();
    return poll(p);
  };

  auto last_poll = std::chrono::steady_clock::now();
  for (i64 e = 0; e < tc.epochs && !stop; ++e) {
    if (tc.shuffle) {
      shuffle_like_cpu(perm, rng);
      upload_bytes(idx.data(), perm.data(), sizeof(i64) * n);
    }
    kern::begin_epoch(st(), ctl.data());
    epoch_start = launched;
    read_upto = 0;
    seen = 0;
    sum = 0;
    for (i64 s = 0; s < n && !stop; s += bs) {
      if (tc.max_steps >= 0 && launched >= tc.max_steps) {
        stop = true;
        break;
      }
      const i64 m = std::min(bs, n - s);
      if (use_graphs && graphs_ready && m == bs)
        graph[par].launch(st());
      else
        step_ops(buf[par], buf[1 - par], m);
      last_m = m;
      par ^= 1;
      ++launched;
      if (use_graphs && !graphs_ready && m == bs) {
        capture(0);
        capture(1);
        graphs_ready = true;
      }
      const auto now = std::chrono::steady_clock::now();
      const bool due = tc.poll_every > 0 && launched % tc.poll_every == 0;
      if (due || now - last_poll > std::chrono::milliseconds(100)) {
        last_poll = now;
        read_status();
        if (diverged) {
          stop = true;
          break;
        }
        PollInfo p;
        p.epoch = e;
        p.step = launched;
        p.loss = seen ? static_cast<double>(sum / seen) : 0.0;
        p.scheduled = due;
        if (do_poll(p)) {
          stop = true;
          res.status = Status::Stopped;
        }
      }
    }
    if (!diverged) read_status();
    if (diverged) break;
    if (seen == n) {
      res.epoch_loss.push_back(static_cast<double>(sum / seen));
      res.epochs_done = e + 1;
      PollInfo p;
      p.epoch = e;
      p.step = launched;
      p.loss = res.epoch_loss.back();
      p.epoch_end = true;
      if (has_val) {
        p.has_val = true;
        p.val_loss = objective(buf[par], xv, yv, nv, 0);
        res.val_loss.push_back(p.val_loss);
      }
      if (!stop && do_poll(p)) {
        stop = true;
        res.status = Status::Stopped;
      }
    }
  }
  res.graphs = graphs_ready;

  // ---- which buffer holds the result (train.hpp: divergence revert and the last-step check)
  int final_par = par;
  if (diverged) {
    res.status = Status::Diverged;
    const int par_j = static_cast<int>((div_at - sync_step) & 1);  // cur of the step whose loss was not finite
    final_par = div_at > 0 ? 1 - par_j : par_j;
    res.steps = div_at;
  } else {
    res.steps = launched;
    if (launched > 0) {
      // The last step's weights were never evaluated: a forward pass on the whole last minibatch tells
      // whether they diverged, as in train.hpp.
      const T* cur = buf[par];
      const i64 rows = last_m;
      forward(tr, cur, xb.data(), rows, first, L - 1);
      const T inv = T(1) / T(rows);
      kern::head_loss<T>(st(), a.loss, tr.output(a, L - 1), yb.data(), rows, K, inv, tr.g.data(),
                         tr.rowloss.data());
      l2_terms(tr, cur, nullptr, 0, -1);
      kern::finalize_loss<T>(st(), tr.rowloss.data(), rows, kern::head_scale<T>(a.loss, K, inv), tr.reg.data(),
                             n_l2() * kern::kL2Blocks, scal.data(), nullptr, nullptr, {});
      double h = 0;
      download(&h, scal.data(), 1);
      stream.sync();
      if (!std::isfinite(static_cast<T>(h))) {
        res.status = Status::Diverged;
        final_par = 1 - par;
      }
    }
  }
  if (final_par == 1) copy_d2d(theta.data() + off, spare.data() + off, len);
  if (tc.state_key <= 0) {
    download(sm, st_m.data(), P, Xfer::State);
    download(sv, st_v.data(), P, Xfer::State);
  }
  download(&hc, ctl.data(), 1);
  stream.sync();
  res.t = hc.t;
  return res;
}

// ====================================================================================== public methods

namespace {
// Restores the current device in destructors without throwing.
struct QuietDeviceGuard {
  int prev = -1;
  explicit QuietDeviceGuard(int device) {
    if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
    cudaSetDevice(device);
  }
  ~QuietDeviceGuard() {
    if (prev >= 0) cudaSetDevice(prev);
    cudaGetLastError();
  }
};
}  // namespace

template <class T>
CudaNetwork<T>::CudaNetwork(NetDesc desc, int device) {
  if (desc.layers.empty()) throw std::invalid_argument("layers: expected at least one layer, got 0");
  std::string err;
  const int count = device_count(&err);
  if (device < 0 || device >= count)
    throw CudaError("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                    " device(s)" + (err.empty() ? std::string() : ": " + err) + ")");
  DeviceGuard guard(device);
  impl_ = std::make_unique<Impl>(std::move(desc), device);
}

template <class T>
CudaNetwork<T>::~CudaNetwork() {
  if (!impl_) return;
  QuietDeviceGuard guard(impl_->device);
  cudaStreamSynchronize(impl_->st());
  impl_.reset();
}

template <class T>
const NetDesc& CudaNetwork<T>::desc() const {
  return impl_->a;
}

template <class T>
int CudaNetwork<T>::device() const {
  return impl_->device;
}

template <class T>
void CudaNetwork<T>::set_tf32(bool on) {
  DeviceGuard guard(impl_->device);
  SENSINET_CUBLAS_CHECK(cublasSetMathMode(impl_->blas.get(), on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  impl_->tf32 = on;
}

template <class T>
bool CudaNetwork<T>::tf32() const {
  return impl_->tf32;
}

template <class T>
void CudaNetwork<T>::set_parameters(const T* host) {
  DeviceGuard guard(impl_->device);
  impl_->upload(impl_->theta.data(), host, impl_->a.n_params(), Xfer::Params);
  impl_->stream.sync();
}

template <class T>
void CudaNetwork<T>::get_parameters(T* host) {
  DeviceGuard guard(impl_->device);
  impl_->download(host, impl_->theta.data(), impl_->a.n_params(), Xfer::Params);
  impl_->stream.sync();
}

template <class T>
void CudaNetwork<T>::forward(const T* x, i64 n, i64 first, bool link, T* out, i64 x_key) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  const NetDesc& a = I.a;
  const i64 L = a.n_layers(), K = a.n_outputs(), din = a.layers[first].n_in;
  const T* xd = I.data_in(I.x_ev, x_key, x, n * din, "the input X");
  I.out_ev.reserve(n * K, "the network output");
  const i64 step = eval_chunk(a, n);
  I.ev.reserve(a, step, 1, first, I.n_l2());
  for (i64 s = 0; s < n; s += step) {
    const i64 m = std::min(step, n - s);
    I.forward(I.ev, I.theta.data(), xd + s * din, m, first, L - 1);
    I.copy_d2d(I.out_ev.data() + s * K, I.ev.output(a, L - 1), m * K);
  }
  if (link) kern::apply_link<T>(I.st(), a.loss, I.out_ev.data(), n, K);
  I.download(out, I.out_ev.data(), n * K);
  I.stream.sync();
}

template <class T>
void CudaNetwork<T>::layer_input(const T* x, i64 n, i64 layer, T* out, i64 x_key) {
  Impl& I = *impl_;
  const NetDesc& a = I.a;
  if (layer == 0) {
    std::memcpy(out, x, sizeof(T) * n * a.n_inputs());
    return;
  }
  DeviceGuard guard(I.device);
  const i64 din = a.n_inputs(), w = a.layers[layer - 1].n_out;
  const T* xd = I.data_in(I.x_ev, x_key, x, n * din, "the input X");
  I.out_ev.reserve(n * w, "the layer input");
  const i64 step = eval_chunk(a, n);
  I.ev.reserve(a, step, 1, 0, I.n_l2());
  for (i64 s = 0; s < n; s += step) {
    const i64 m = std::min(step, n - s);
    I.forward(I.ev, I.theta.data(), xd + s * din, m, 0, layer - 1);
    I.copy_d2d(I.out_ev.data() + s * w, I.ev.output(a, layer - 1), m * w);
  }
  I.download(out, I.out_ev.data(), n * w);
  I.stream.sync();
}

template <class T>
T CudaNetwork<T>::loss_and_grad(const T* x, const T* y, i64 n, i64 input_layer, i64 first, i64 last, const T* theta,
                                T* grad, i64 x_key, i64 y_key) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  const NetDesc& a = I.a;
  const i64 L = a.n_layers(), K = a.n_outputs(), P = a.n_params();
  if (last < 0) last = L - 1;
  if (input_layer < 0) input_layer = first;
  if (input_layer > first) throw std::invalid_argument("input_layer: expected <= first");
  const i64 din = a.layers[input_layer].n_in;
  const T* xd = I.data_in(I.x_ev, x_key, x, n * din, "the input X");
  const T* yd = I.data_in(I.y_ev, y_key, y, n * K, "the targets Y");
  const T* th = I.theta.data();
  if (theta) {
    I.theta_ev.reserve(P, "the parameter vector theta");
    I.upload(I.theta_ev.data(), theta, P, Xfer::Params);
    th = I.theta_ev.data();
  }
  if (!grad) return static_cast<T>(I.objective(th, xd, yd, n, input_layer));
  I.grad_ev.reserve(P, "the gradient");
  const i64 step = eval_chunk(a, n);
  I.ev.reserve(a, step, 1, input_layer, I.n_l2());
  const i64 chunks = (n + step - 1) / step;
  I.scal.reserve(chunks + 1, "the loss scalars");
  const T inv_n = T(1) / T(n);
  for (i64 c = 0, s = 0; s < n; ++c, s += step) {
    const i64 m = std::min(step, n - s);
    I.forward(I.ev, th, xd + s * din, m, input_layer, L - 1);
    kern::head_loss<T>(I.st(), a.loss, I.ev.output(a, L - 1), yd + s * K, m, K, inv_n, I.ev.g.data(),
                       I.ev.rowloss.data());
    kern::finalize_loss<T>(I.st(), I.ev.rowloss.data(), m, kern::head_scale<T>(a.loss, K, inv_n), nullptr, 0,
                           I.scal.data() + c, nullptr, nullptr, {});
    I.backward(I.ev, th, 1, first, first, last, I.grad_ev.data(), c > 0, false, nullptr);
  }
  I.l2_terms(I.ev, th, I.grad_ev.data(), first, last);
  kern::finalize_loss<T>(I.st(), nullptr, 0, 0.0, I.ev.reg.data(), I.n_l2() * kern::kL2Blocks, I.scal.data() + chunks,
                         nullptr, nullptr, {});
  std::vector<double> h(chunks + 1);
  I.download(h.data(), I.scal.data(), chunks + 1);
  const i64 base = a.offsets[first], len = a.offsets[last + 1] - base;
  I.download(grad, I.grad_ev.data() + base, len);
  I.stream.sync();
  long double total = 0;
  for (i64 c = 0; c < chunks; ++c) total += static_cast<T>(h[c]);
  total += static_cast<T>(h[chunks]);
  return static_cast<T>(total);
}

template <class T>
TrainOutcome CudaNetwork<T>::train(const T* x, const T* y, i64 n, const T* x_val, const T* y_val, i64 n_val,
                                   const OptSettings& oc, T* state_m, T* state_v, i64 t, const TrainSettings& tc,
                                   const PollFn& poll) {
  DeviceGuard guard(impl_->device);
  return impl_->train(x, y, n, x_val, y_val, n_val, oc, state_m, state_v, t, tc, poll);
}

template <class T>
void CudaNetwork<T>::sensitivities(const T* x, const T* y, i64 n, bool wrt_loss, const std::vector<SiteDesc>& sites,
                                   int reduce, std::vector<std::vector<double>>& acc, i64 x_key, i64 y_key) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  const NetDesc& a = I.a;
  const i64 L = a.n_layers(), KO = a.n_outputs(), d = a.n_inputs();
  const i64 K = wrt_loss ? 1 : KO;
  std::vector<i64> widths, offs;
  i64 stop = L - 1, total = 0;
  int input_site = -1;
  for (std::size_t i = 0; i < sites.size(); ++i) {
    const SiteDesc& s = sites[i];
    const i64 w = s.layer < 0 ? d : (s.part == 0 ? a.layers[s.layer].inner_width() : a.layers[s.layer].n_out);
    widths.push_back(w);
    offs.push_back(total);
    total += K * w;
    stop = std::min(stop, std::max<i64>(s.layer, 0));
    if (s.layer < 0) input_site = static_cast<int>(i);
  }
  const T* xd = I.data_in(I.x_ev, x_key, x, n * d, "the input X");
  const T* yd = wrt_loss ? I.data_in(I.y_ev, y_key, y, n * KO, "the targets Y") : nullptr;
  I.sens_acc.reserve(std::max<i64>(total, 1), "the sensitivity sums");
  SENSINET_CUDA_CHECK(cudaMemsetAsync(I.sens_acc.data(), 0, sizeof(double) * std::max<i64>(total, 1), I.st()));
  SensHook hook;
  hook.sites = &sites;
  hook.K = K;
  hook.reduce = reduce;
  for (std::size_t i = 0; i < sites.size(); ++i) hook.acc.push_back(I.sens_acc.data() + offs[i]);
  // Rows per chunk: the stacked reverse-pass buffers (K * rows * width) near 2^24 values.
  const i64 step = std::max<i64>(1, std::min(n, (i64(1) << 24) / (K * a.max_width())));
  I.ev.reserve(a, step, K, 0, I.n_l2());
  for (i64 s = 0; s < n; s += step) {
    const i64 m = std::min(step, n - s);
    const T* xs = xd + s * d;
    I.forward(I.ev, I.theta.data(), xs, m, 0, L - 1);
    if (wrt_loss)
      kern::head_loss<T>(I.st(), a.loss, I.ev.output(a, L - 1), yd + s * KO, m, KO, T(1), I.ev.g.data(),
                         I.ev.rowloss.data());
    else
      kern::seed_outputs<T>(I.st(), I.ev.g.data(), m, K);
    I.backward(I.ev, I.theta.data(), K, stop, 0, -1, nullptr, false, input_site >= 0, &hook);
    if (input_site >= 0)
      kern::sensitivity_reduce<T>(I.st(), I.ev.g.data(), xs, m, d, K, reduce, hook.acc[input_site],
                                  I.ev.partial.data());
  }
  std::vector<double> h(static_cast<std::size_t>(std::max<i64>(total, 1)));
  I.download(h.data(), I.sens_acc.data(), std::max<i64>(total, 1));
  I.stream.sync();
  acc.assign(sites.size(), {});
  for (std::size_t i = 0; i < sites.size(); ++i)
    acc[i].assign(h.begin() + offs[i], h.begin() + offs[i] + K * widths[i]);
}

template <class T>
bool CudaNetwork<T>::has_state(i64 key) const {
  for (const auto& x : impl_->states)
    if (x.key == key) return true;
  return false;
}

template <class T>
void CudaNetwork<T>::download_state(i64 key, T* m, T* v) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  auto* s = I.find_state(key);
  if (s == nullptr) throw std::invalid_argument("state: no optimizer state with key " + std::to_string(key));
  I.download(m, s->m.data(), I.a.n_params(), Xfer::State);
  I.download(v, s->v.data(), I.a.n_params(), Xfer::State);
  I.stream.sync();
}

template <class T>
void CudaNetwork<T>::drop_state(i64 key) {
  DeviceGuard guard(impl_->device);
  auto& v = impl_->states;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it->key == key) {
      impl_->stream.sync();  // no kernel may still use it
      v.erase(it);
      return;
    }
}

template <class T>
void CudaNetwork<T>::forget_data(i64 key) {
  DeviceGuard guard(impl_->device);
  auto& v = impl_->resident;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it->key == key) {
      impl_->stream.sync();
      v.erase(it);
      return;
    }
}

template <class T>
std::string CudaNetwork<T>::device_name() const {
  cudaDeviceProp p{};
  SENSINET_CUDA_CHECK(cudaGetDeviceProperties(&p, impl_->device));
  return p.name;
}

template <class T>
MemoryInfo CudaNetwork<T>::memory_info() const {
  DeviceGuard guard(impl_->device);
  MemoryInfo m;
  SENSINET_CUDA_CHECK(cudaMemGetInfo(&m.free, &m.total));
  m.model_bytes = impl_->bytes();
  m.resident_bytes = impl_->resident_bytes();
  return m;
}

template <class T>
TransferStats CudaNetwork<T>::transfer_stats() const {
  return impl_->stats;
}

template <class T>
void CudaNetwork<T>::reset_transfer_stats() {
  impl_->stats = TransferStats{};
}

template <class T>
void CudaNetwork<T>::free_workspace() {
  DeviceGuard guard(impl_->device);
  impl_->stream.sync();
  impl_->free_workspace();
}

template class CudaNetwork<float>;
template class CudaNetwork<double>;

// ====================================================================================== module level

int device_count(std::string* error) noexcept {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (error) *error = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();
    return 0;
  }
  if (n == 0 && error) *error = "no CUDA device";
  return n;
}

std::vector<DeviceProps> device_list() {
  std::vector<DeviceProps> out;
  const int n = device_count(nullptr);
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    SENSINET_CUDA_CHECK(cudaGetDeviceProperties(&p, i));
    DeviceProps d;
    d.index = i;
    d.name = p.name;
    d.total_memory = p.totalGlobalMem;
    d.major = p.major;
    d.minor = p.minor;
    d.multiprocessors = p.multiProcessorCount;
    out.push_back(d);
  }
  return out;
}

std::size_t bytes_in_use() noexcept { return device_bytes_in_use(); }

void try_allocate(std::size_t bytes, int device) {
  DeviceGuard guard(device);
  DeviceBuffer<char> b;
  b.reserve(bytes, "a test allocation");
}

int runtime_version() noexcept { return CUDART_VERSION; }

int driver_version() noexcept {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return v;
}

int cublas_version() noexcept { return CUBLAS_VERSION; }

}  // namespace sensinet::cuda
