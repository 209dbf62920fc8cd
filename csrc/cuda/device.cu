// The device, its memory and its errors: allocation with byte accounting and clear out-of-memory messages,
// CUDA / cuBLAS error text, and the module-level queries (devices, versions).
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
