// RAII owners of device resources. Memory comes from plain cudaMalloc (no managed memory); every owner
// frees in its destructor, so a model that goes away takes all of its device memory with it.
#pragma once
#include <atomic>
#include <cstddef>
#include <utility>

#include "cuda_check.hpp"

namespace sensinet::cuda {

// cudaMalloc with a clear OutOfMemory naming `bytes` and `what`; counted in allocated_bytes().
void* device_malloc(std::size_t bytes, const char* what);
void device_free(void* p, std::size_t bytes) noexcept;
// Bytes currently held by every DeviceBuffer of the process (leak checks).
std::size_t device_bytes_in_use() noexcept;

// A typed device array with a capacity: reserve() grows it (contents are not kept), never shrinks it,
// so buffers are reused across calls and steps without allocations.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }

  // Capacity >= n elements. Growing frees the old block first, so peak memory stays at the new size.
  void reserve(std::size_t n, const char* what) {
    if (n <= cap_) return;
    release();
    p_ = static_cast<T*>(device_malloc(n * sizeof(T), what));
    cap_ = n;
  }
  void release() noexcept {
    if (p_) device_free(p_, cap_ * sizeof(T));
    p_ = nullptr;
    cap_ = 0;
  }
  void swap(DeviceBuffer& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(cap_, o.cap_);
  }
  T* data() const noexcept { return p_; }
  std::size_t capacity() const noexcept { return cap_; }

 private:
  T* p_ = nullptr;
  std::size_t cap_ = 0;
};

class Stream {
 public:
  Stream() { SENSINET_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (s_) cudaStreamDestroy(s_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const noexcept { return s_; }
  void sync() const { SENSINET_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

// Pinned host memory for staging transfers of pageable host arrays: two halves with an event each, so the
// host copy into one half overlaps the bus transfer out of the other. Allocated on first use; if pinned
// memory cannot be had, ok() is false and callers copy directly.
class PinnedStaging {
 public:
  static constexpr std::size_t kHalf = std::size_t(8) << 20;  // bytes per half
  static constexpr std::size_t kMin = std::size_t(1) << 20;   // smaller transfers go directly

  PinnedStaging() = default;
  ~PinnedStaging() {
    for (cudaEvent_t& e : done_)
      if (e) {
        cudaEventSynchronize(e);  // no transfer may still read or write the memory freed below
        cudaEventDestroy(e);
      }
    if (host_) cudaFreeHost(host_);
  }
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  bool ok() {
    if (!tried_) {
      tried_ = true;
      if (cudaMallocHost(&host_, 2 * kHalf) != cudaSuccess) {
        host_ = nullptr;
        cudaGetLastError();  // clear the error: staging is an optimisation
        return false;
      }
      for (cudaEvent_t& e : done_) SENSINET_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    }
    return host_ != nullptr;
  }
  char* half(int h) const { return static_cast<char*>(host_) + h * kHalf; }
  cudaEvent_t event(int h) const { return done_[h]; }

 private:
  void* host_ = nullptr;
  cudaEvent_t done_[2] = {nullptr, nullptr};
  bool tried_ = false;
};

class CublasHandle {
 public:
  CublasHandle() { SENSINET_CUBLAS_CHECK(cublasCreate(&h_)); }
  ~CublasHandle() {
    if (h_) cublasDestroy(h_);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const noexcept { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

// An instantiated CUDA graph (one captured training step).
class GraphExec {
 public:
  GraphExec() = default;
  ~GraphExec() { reset(); }
  GraphExec(const GraphExec&) = delete;
  GraphExec& operator=(const GraphExec&) = delete;
  void reset() noexcept {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
    exec_ = nullptr;
    graph_ = nullptr;
  }
  // Takes ownership of a captured graph and instantiates it.
  void instantiate(cudaGraph_t g) {
    reset();
    graph_ = g;
    SENSINET_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  }
  void launch(cudaStream_t s) const { SENSINET_CUDA_CHECK(cudaGraphLaunch(exec_, s)); }
  bool ready() const noexcept { return exec_ != nullptr; }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// Makes `device` current for a scope and restores the previous device after it.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    SENSINET_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) SENSINET_CUDA_CHECK(cudaSetDevice(device));
    changed_ = prev_ != device;
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool changed_ = false;
};

}  // namespace sensinet::cuda
