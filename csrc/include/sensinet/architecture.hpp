// Layer specifications and the layout of all parameters in one flat vector.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "sensinet/activations.hpp"
#include "sensinet/types.hpp"

namespace sensinet {

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

}  // namespace sensinet
