// Every CUDA runtime and cuBLAS call goes through these checks: a failure becomes a C++ exception
// (CudaError, or OutOfMemory for allocation failures) naming the call, the error and the place.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "errors.hpp"

namespace sensinet::cuda {

// "1.50 GiB (1610612736 bytes)"
std::string format_bytes(std::size_t bytes);
const char* cublas_status_name(cublasStatus_t s);
[[noreturn]] void throw_cuda(cudaError_t e, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t s, const char* expr, const char* file, int line);

}  // namespace sensinet::cuda

#define SENSINET_CUDA_CHECK(expr)                                                   \
  do {                                                                              \
    const cudaError_t sensinet_err_ = (expr);                                       \
    if (sensinet_err_ != cudaSuccess)                                               \
      ::sensinet::cuda::throw_cuda(sensinet_err_, #expr, __FILE__, __LINE__);       \
  } while (0)

#define SENSINET_CUBLAS_CHECK(expr)                                                 \
  do {                                                                              \
    const cublasStatus_t sensinet_st_ = (expr);                                     \
    if (sensinet_st_ != CUBLAS_STATUS_SUCCESS)                                      \
      ::sensinet::cuda::throw_cublas(sensinet_st_, #expr, __FILE__, __LINE__);      \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, execution errors at the next sync.
#define SENSINET_CUDA_CHECK_LAUNCH(what) SENSINET_CUDA_CHECK(cudaPeekAtLastError())
