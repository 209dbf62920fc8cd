// The engine's configuration types, free of Eigen: the CPU engine (Eigen) and the CUDA engine (nvcc) and
// both bindings share them, so neither re-declares the other's types or copies them field by field.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace sensinet {

using Index = std::ptrdiff_t;  // Eigen's default index type (types.hpp checks that they agree)

// ---------------------------------------------------------------------------------------------- activations
enum class Activation { Identity, Relu, LeakyRelu, Tanh, Sigmoid, Softplus };

inline Activation parse_activation(const std::string& name) {
  if (name == "identity" || name == "linear") return Activation::Identity;
  if (name == "relu") return Activation::Relu;
  if (name == "leaky_relu") return Activation::LeakyRelu;
  if (name == "tanh") return Activation::Tanh;
  if (name == "sigmoid" || name == "logistic") return Activation::Sigmoid;
  if (name == "softplus") return Activation::Softplus;
  throw std::invalid_argument("activation: expected one of identity, relu, leaky_relu, tanh, sigmoid, softplus; got '" +
                              name + "'");
}

inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::Relu: return "relu";
    case Activation::LeakyRelu: return "leaky_relu";
    case Activation::Tanh: return "tanh";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Softplus: return "softplus";
  }
  return "?";
}

// Piecewise linear activations keep an exact affine map per on/off pattern (ReLU clusters).
inline bool is_piecewise_linear(Activation a) {
  return a == Activation::Identity || a == Activation::Relu || a == Activation::LeakyRelu;
}

// ---------------------------------------------------------------------------------------------- layers
// Dense:     out = act(x W + b)                         W: n_in x n_out
// Residual2: out = x + act(x W1 + b1) W2                W1: d x hidden, b1: hidden, W2: hidden x d
// Residual1: out = x + act(x W + b)                     W: d x d
enum class LayerKind { Dense, Residual2, Residual1 };

enum class Loss { MSE, CrossEntropy, BinaryCrossEntropy };

inline Loss parse_loss(const std::string& name) {
  if (name == "mse") return Loss::MSE;
  if (name == "cross_entropy") return Loss::CrossEntropy;
  if (name == "binary_cross_entropy") return Loss::BinaryCrossEntropy;
  throw std::invalid_argument("loss: expected one of mse, cross_entropy, binary_cross_entropy; got '" + name + "'");
}

inline LayerKind parse_kind(const std::string& name) {
  if (name == "dense") return LayerKind::Dense;
  if (name == "residual2") return LayerKind::Residual2;
  if (name == "residual1") return LayerKind::Residual1;
  throw std::invalid_argument("layer kind: expected dense, residual2 or residual1; got '" + name + "'");
}

struct LayerSpec {
  LayerKind kind = LayerKind::Dense;
  Index n_in = 0, n_out = 0, n_hidden = 0;  // n_hidden: inner width of residual blocks
  Activation act = Activation::Identity;
  double alpha = 0.01;  // leaky_relu slope
  double l2 = 0.0;      // weight decay: adds l2/2 * ||W||^2 for every weight matrix of the layer

  // Parameter counts of the pieces, in storage order.
  Index n_w1() const { return kind == LayerKind::Residual2 ? n_in * n_hidden : n_in * n_out; }
  Index n_b1() const { return kind == LayerKind::Residual2 ? n_hidden : n_out; }
  Index n_w2() const { return kind == LayerKind::Residual2 ? n_hidden * n_out : 0; }
  Index n_params() const { return n_w1() + n_b1() + n_w2(); }
  Index inner_width() const { return kind == LayerKind::Residual2 ? n_hidden : n_out; }
};

struct Architecture {
  std::vector<LayerSpec> layers;
  std::vector<Index> offsets;  // offsets[l] = first parameter of layer l; offsets[L] = total
  Loss loss = Loss::MSE;

  Architecture() = default;
  Architecture(std::vector<LayerSpec> specs, Loss loss_) : layers(std::move(specs)), loss(loss_) {
    if (layers.empty()) throw std::invalid_argument("layers: expected at least one layer, got 0");
    offsets.assign(layers.size() + 1, 0);
    for (size_t l = 0; l < layers.size(); ++l) {
      const LayerSpec& s = layers[l];
      const std::string where = "layers[" + std::to_string(l) + "]";
      if (s.n_in < 1 || s.n_out < 1)
        throw std::invalid_argument(where + ": widths must be >= 1, got n_in=" + std::to_string(s.n_in) +
                                    ", n_out=" + std::to_string(s.n_out));
      if (l > 0 && s.n_in != layers[l - 1].n_out)
        throw std::invalid_argument(where + ": n_in=" + std::to_string(s.n_in) + " does not match the previous width " +
                                    std::to_string(layers[l - 1].n_out));
      if (s.kind != LayerKind::Dense && s.n_in != s.n_out)
        throw std::invalid_argument(where + ": a residual block keeps its width, got n_in=" + std::to_string(s.n_in) +
                                    ", n_out=" + std::to_string(s.n_out));
      if (s.kind == LayerKind::Residual2 && s.n_hidden < 1)
        throw std::invalid_argument(where + ": residual hidden width must be >= 1, got " + std::to_string(s.n_hidden));
      if (!(s.l2 >= 0.0)) throw std::invalid_argument(where + ": l2 must be >= 0, got " + std::to_string(s.l2));
      offsets[l + 1] = offsets[l] + s.n_params();
    }
    if (loss != Loss::MSE && layers.back().act != Activation::Identity)
      throw std::invalid_argument("layers: a classification head needs an identity (logit) last layer, got " +
                                  std::string(activation_name(layers.back().act)));
  }

  Index n_layers() const { return static_cast<Index>(layers.size()); }
  Index n_inputs() const { return layers.front().n_in; }
  Index n_outputs() const { return layers.back().n_out; }
  Index n_params() const { return offsets.back(); }
  Index max_width() const {
    Index w = n_inputs();
    for (const auto& s : layers) w = std::max({w, s.n_out, s.n_hidden});
    return w;
  }
  void check_block(Index first, Index last) const {
    if (first < 0 || last >= n_layers() || first > last)
      throw std::invalid_argument("block: expected 0 <= first <= last < " + std::to_string(n_layers()) + ", got first=" +
                                  std::to_string(first) + ", last=" + std::to_string(last));
  }
};

// ---------------------------------------------------------------------------------------------- sensitivities
// A site of neurons with scaling factors: layer -1 is the input; part 0 a layer's activation (the inner
// neurons of a residual block), part 1 a residual block's output.
struct Site {
  Index layer = 0;
  int part = 0;
};

enum class Reduce { MeanAbs = 0, RMS = 1, Mean = 2 };

// ---------------------------------------------------------------------------------------------- optimizers
enum class OptKind { SGD, Adam };

struct OptConfig {
  OptKind kind = OptKind::SGD;
  double lr = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

inline OptKind parse_optimizer(const std::string& name) {
  if (name == "sgd") return OptKind::SGD;
  if (name == "adam") return OptKind::Adam;
  throw std::invalid_argument("optimizer: expected 'sgd', 'adam' (or 'lbfgs' for full-batch), got '" + name + "'");
}

// ---------------------------------------------------------------------------------------------- training loops
struct TrainConfig {
  Index epochs = 1;
  Index batch_size = 32;
  bool shuffle = true;
  uint64_t seed = 0;
  Index first = 0, last = -1;  // block of layers to train; x is the input of layer `first`
  Index poll_every = 0;        // 0: only at epoch ends (and the 0.1 s interrupt check)
  Index max_steps = -1;        // stop after this many steps (-1: no limit)
  bool poll_reads_weights = true;  // scheduled polls run code that reads the weights (sync them first)
};

enum class TrainStatus { Completed = 0, Stopped = 1, Diverged = 2 };

struct Progress {
  Index epoch = 0, step = 0;
  double loss = 0;      // mean minibatch loss of the epoch so far
  bool epoch_end = false;
  bool scheduled = true;  // false: a timer poll, only for the interrupt check
  bool has_val = false;   // the engine evaluated the validation objective (the CUDA engine at epoch ends)
  double val_loss = 0;
};

}  // namespace sensinet
