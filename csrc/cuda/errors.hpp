// Exceptions of the CUDA backend. Plain C++ (no CUDA headers) so the bindings can catch and translate
// them: OutOfMemory -> Python MemoryError, CudaError -> RuntimeError.
#pragma once
#include <stdexcept>
#include <string>

namespace sensinet::cuda {

// A CUDA runtime or cuBLAS call failed (message: the call, the error name and text, file:line).
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A device allocation failed; the message names the size, what it was for and the device's free memory.
class OutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace sensinet::cuda
