// The CUDA engine: a network whose flat parameter vector, activation caches, training state and data
// live in GPU memory, with the algorithms of the CPU engine (network.hpp, train.hpp, sensitivity.hpp):
// the same flat layout (W as (n_in, n_out) row-major, then b; residual2: W1, b1, W2), forward with
// explicit caches, the reverse pass of the whole net or of a block of layers, minibatch SGD / momentum /
// Nesterov / Adam with the CPU engine's seeded permutation, and the stacked-seed sensitivity sweep.
//
// Plain C++ (no CUDA or Eigen headers; the configuration types are the CPU engine's, from the Eigen-free
// sensinet/config.hpp): the implementation sits behind a pointer (cuda_impl.cuh; its methods are defined in
// cuda_network.cu, cuda_train.cu and cuda_sensitivity.cu).
// Errors: CudaError (a CUDA / cuBLAS call failed), OutOfMemory (an allocation failed; the message names
// the size), std::invalid_argument (bad arguments).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "errors.hpp"
#include "sensinet/config.hpp"

namespace sensinet::cuda {

using i64 = Index;  // as in kernels.hpp

// The settings of a training loop on the device: the CPU engine's, plus what only the device needs.
struct DeviceTrainConfig : TrainConfig {
  i64 input_layer = -1;  // x is the input of this layer (-1: of `first`); the block input is computed on the
                         // device from it, once per call
  bool graphs = true;    // replay full minibatch steps as CUDA graphs
  // Device residency (0: none). A data key names a prepared host array whose device copy is kept between
  // calls; a state key names an optimizer whose state vectors stay on the device (not written back to the
  // host arrays, which are read only when the state is new or state_upload is set).
  i64 x_key = 0, y_key = 0, xv_key = 0, yv_key = 0;
  i64 state_key = 0;
  bool state_upload = true;
};

using PollFn = std::function<bool(const Progress&)>;

struct TrainOutcome {
  TrainStatus status = TrainStatus::Completed;
  i64 steps = 0, epochs_done = 0, t = 0;
  std::vector<double> epoch_loss, val_loss;
  double last_loss = 0;
  bool graphs = false;  // full minibatch steps ran as CUDA graph replays
};

// What crosses the bus, by kind: data (inputs, targets), parameters, optimizer state; the rest (the
// permutation, step losses, scalars) counts only in the totals.
enum class Xfer { Data, Params, State, Other };
struct TransferStats {
  i64 h2d_calls = 0, h2d_bytes = 0, d2h_calls = 0, d2h_bytes = 0;
  i64 h2d_data_bytes = 0, h2d_param_bytes = 0, h2d_state_bytes = 0, d2h_param_bytes = 0, d2h_state_bytes = 0;
};

struct MemoryInfo {
  std::size_t free = 0, total = 0, model_bytes = 0, resident_bytes = 0;  // resident: kept data and states
};


template <class T>
class CudaNetwork {
 public:
  CudaNetwork(Architecture arch, int device);
  ~CudaNetwork();
  CudaNetwork(const CudaNetwork&) = delete;
  CudaNetwork& operator=(const CudaNetwork&) = delete;

  const Architecture& arch() const;
  int device() const;

  // TF32 tensor-core math for the float32 GEMMs (cuBLAS CUBLAS_TF32_TENSOR_OP_MATH); off by default, as in
  // PyTorch. Float64 GEMMs are unaffected.
  void set_tf32(bool on);
  bool tf32() const;

  void set_parameters(const T* host);
  void get_parameters(T* host);
  // Every x / y below comes with a key: nonzero keeps its device copy for later calls with the same key
  // (the caller gives a new key whenever the host contents may differ).
  //
  // Network output (n x n_outputs, logits for classification heads; link: probabilities) of x, the input
  // of layer `first`.
  void forward(const T* x, i64 n, i64 first, bool link, T* out, i64 x_key = 0);
  // Input of `layer` (the output of layer-1) for the network input x (n x n_inputs).
  void layer_input(const T* x, i64 n, i64 layer, T* out, i64 x_key = 0);
  // J = mean loss + L2 of the whole data set and, with grad, dJ/d(parameters of layers first..last) into
  // grad[0 .. offsets[last+1] - offsets[first]). x is the input of `input_layer` (<= first); layers
  // input_layer..first-1 are only evaluated, the reverse pass stops at `first`. theta: evaluate there
  // instead of at the network's own parameters.
  T loss_and_grad(const T* x, const T* y, i64 n, i64 input_layer, i64 first, i64 last, const T* theta, T* grad,
                  i64 x_key = 0, i64 y_key = 0);
  // Minibatch training as sensinet::train; x_val (may be null) gives a validation objective at each epoch
  // end. Without tc.state_key, state_m / state_v (n_params) are uploaded and written back; with it the
  // state stays on the device under that key (see DeviceTrainConfig).
  TrainOutcome train(const T* x, const T* y, i64 n, const T* x_val, const T* y_val, i64 n_val, const OptConfig& oc,
                     T* state_m, T* state_v, i64 t, const DeviceTrainConfig& tc, const PollFn& poll);
  // Sums over the rows of the reduced sensitivities (as sensinet::sensitivities): acc[i] is K x width
  // (row-major) for site i, K = n_outputs (or 1 with wrt_loss, which needs y).
  void sensitivities(const T* x, const T* y, i64 n, bool wrt_loss, const std::vector<Site>& sites, int reduce,
                     std::vector<std::vector<double>>& acc, i64 x_key = 0, i64 y_key = 0);

  // ReLU patterns (as sensinet::relu_patterns): out is n x n_words, bit b of a sample in word b / 64 in the
  // order of `layers` and of their (inner) neurons.
  void relu_patterns(const T* x, i64 n, const std::vector<i64>& layers, std::uint64_t* out, i64 n_words,
                     i64 x_key = 0);

  // Optimizer states kept on the device (DeviceTrainConfig::state_key).
  bool has_state(i64 key) const;
  void download_state(i64 key, T* m, T* v);  // raises std::invalid_argument for an unknown key
  void drop_state(i64 key);
  // Forget the device copy of a data key (its host array is gone).
  void forget_data(i64 key);

  std::string device_name() const;
  MemoryInfo memory_info() const;
  TransferStats transfer_stats() const;
  void reset_transfer_stats();
  // Frees the caches, training buffers and resident data (they are otherwise kept for the next call);
  // optimizer states stay.
  void free_workspace();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- module level
// Number of CUDA devices; 0 (with the reason in *error) when there is no driver or device. Never throws.
int device_count(std::string* error) noexcept;
struct DeviceProps {
  int index = 0;
  std::string name;
  std::size_t total_memory = 0;
  int major = 0, minor = 0, multiprocessors = 0;
};
std::vector<DeviceProps> device_list();
// Bytes held by all device buffers of this process (leak checks).
std::size_t bytes_in_use() noexcept;
// Allocates `bytes` on `device` and frees them again (raises OutOfMemory like any allocation).
void try_allocate(std::size_t bytes, int device);
int runtime_version() noexcept;  // CUDA runtime the module was built with (e.g. 13000)
int driver_version() noexcept;   // 0 when there is no driver
int cublas_version() noexcept;   // cuBLAS headers the module was built with (e.g. 130002)

}  // namespace sensinet::cuda
