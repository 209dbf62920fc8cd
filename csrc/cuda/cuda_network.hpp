// The CUDA engine: a network whose flat parameter vector, activation caches, training state and data
// live in GPU memory, with the algorithms of the CPU engine (network.hpp, train.hpp, sensitivity.hpp):
// the same flat layout (W as (n_in, n_out) row-major, then b; residual2: W1, b1, W2), forward with
// explicit caches, the reverse pass of the whole net or of a block of layers, minibatch SGD / momentum /
// Nesterov / Adam with the CPU engine's seeded permutation, and the stacked-seed sensitivity sweep.
//
// Plain C++ (no CUDA or Eigen headers): the implementation sits behind a pointer in cuda_network.cu.
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

namespace sensinet::cuda {

using i64 = long long;

// Layer kinds: the integer values of sensinet::LayerKind.
enum KindCode : int { kDense = 0, kResidual2 = 1, kResidual1 = 2 };

struct LayerDesc {
  int kind = kDense;
  i64 n_in = 0, n_out = 0, n_hidden = 0;
  int act = 0;  // sensinet::Activation
  double alpha = 0.01, l2 = 0.0;

  i64 n_w1() const { return kind == kResidual2 ? n_in * n_hidden : n_in * n_out; }
  i64 n_b1() const { return kind == kResidual2 ? n_hidden : n_out; }
  i64 n_w2() const { return kind == kResidual2 ? n_hidden * n_out : 0; }
  i64 n_params() const { return n_w1() + n_b1() + n_w2(); }
  i64 inner_width() const { return kind == kResidual2 ? n_hidden : n_out; }
};

// An architecture as the CPU engine's (validated there: the bindings build a sensinet::Architecture first).
struct NetDesc {
  std::vector<LayerDesc> layers;
  std::vector<i64> offsets;  // offsets[l]: first parameter of layer l; offsets[L]: total
  int loss = 0;              // sensinet::Loss

  NetDesc() = default;
  NetDesc(std::vector<LayerDesc> l, int loss_) : layers(std::move(l)), loss(loss_) {
    offsets.assign(layers.size() + 1, 0);
    for (std::size_t i = 0; i < layers.size(); ++i) offsets[i + 1] = offsets[i] + layers[i].n_params();
  }
  i64 n_layers() const { return static_cast<i64>(layers.size()); }
  i64 n_inputs() const { return layers.front().n_in; }
  i64 n_outputs() const { return layers.back().n_out; }
  i64 n_params() const { return offsets.back(); }
  i64 max_width() const {
    i64 w = n_inputs();
    for (const auto& s : layers) w = std::max(w, std::max(s.n_out, s.n_hidden));
    return w;
  }
};

struct OptSettings {
  int kind = 0;  // 0: SGD, 1: Adam
  double lr = 0.01, momentum = 0.0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

struct TrainSettings {
  i64 epochs = 1, batch_size = 32;
  bool shuffle = true;
  std::uint64_t seed = 0;
  i64 first = 0, last = -1;  // block of layers to train
  i64 input_layer = -1;      // x is the input of this layer (-1: of `first`); the block input is computed
                             // on the device from it, once per call
  i64 poll_every = 0, max_steps = -1;
  bool poll_reads_weights = true;  // scheduled polls run code that reads the weights (sync them first)
  bool graphs = true;        // replay full minibatch steps as CUDA graphs
  // Device residency (0: none). A data key names a prepared host array whose device copy is kept between
  // calls; a state key names an optimizer whose state vectors stay on the device (not written back to the
  // host arrays, which are read only when the state is new or state_upload is set).
  i64 x_key = 0, y_key = 0, xv_key = 0, yv_key = 0;
  i64 state_key = 0;
  bool state_upload = true;
};

struct PollInfo {
  i64 epoch = 0, step = 0;
  double loss = 0;
  bool epoch_end = false, scheduled = true, has_val = false;
  double val_loss = 0;
};
using PollFn = std::function<bool(const PollInfo&)>;

enum class Status { Completed = 0, Stopped = 1, Diverged = 2 };

struct TrainOutcome {
  Status status = Status::Completed;
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

struct SiteDesc {
  i64 layer = 0;  // -1: the input
  int part = 0;   // 0: a layer's activation (inner neurons of a residual block), 1: a residual block's output
};

template <class T>
class CudaNetwork {
 public:
  CudaNetwork(NetDesc desc, int device);
  ~CudaNetwork();
  CudaNetwork(const CudaNetwork&) = delete;
  CudaNetwork& operator=(const CudaNetwork&) = delete;

  const NetDesc& desc() const;
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
  // state stays on the device under that key (see TrainSettings).
  TrainOutcome train(const T* x, const T* y, i64 n, const T* x_val, const T* y_val, i64 n_val, const OptSettings& oc,
                     T* state_m, T* state_v, i64 t, const TrainSettings& tc, const PollFn& poll);
  // Sums over the rows of the reduced sensitivities (as sensinet::sensitivities): acc[i] is K x width
  // (row-major) for site i, K = n_outputs (or 1 with wrt_loss, which needs y).
  void sensitivities(const T* x, const T* y, i64 n, bool wrt_loss, const std::vector<SiteDesc>& sites, int reduce,
                     std::vector<std::vector<double>>& acc, i64 x_key = 0, i64 y_key = 0);

  // Optimizer states kept on the device (TrainSettings::state_key).
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
