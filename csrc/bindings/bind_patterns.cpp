// ReLU activation patterns, bit-packed, for cluster interpretation.
#include "common.hpp"
#include "sensinet/patterns.hpp"

namespace sensinet::bind {

template <class T>
void bind_patterns_for(py::module_& mod) {
  mod.def(
      "relu_patterns",
      [](Model<T>& m, const py::array& x, const std::vector<Index>& layers, int n_threads) {
        auto X = matrix_arg<T>(x, "X", m.arch.n_inputs());
        for (Index l : layers)
          if (l < 0 || l >= m.arch.n_layers())
            throw py::value_error("layers: expected indices in [0, " + std::to_string(m.arch.n_layers()) + "), got " +
                                  std::to_string(l));
        const Index words = std::max<Index>(1, (pattern_bits(m.arch, layers) + 63) / 64);
        py::array_t<uint64_t> out({X.rows(), words});
        {
          NoGil nogil;
          std::lock_guard<std::mutex> lock(m.mu);
          ThreadScope threads(n_threads);
          relu_patterns(m.arch, m.theta.data(), X, layers, out.mutable_data(), words, m.ws);
        }
        return out;
      },
      py::arg("model"), py::arg("X"), py::arg("layers"), py::arg("n_threads") = 0,
      "Bits z > 0 of the neurons of `layers` (inner neurons of residual blocks), 64 per uint64 word.");
}

void bind_patterns(py::module_& m) {
  bind_patterns_for<double>(m);
  bind_patterns_for<float>(m);
}

}  // namespace sensinet::bind
