// Network objects (float64 and float32): construction from layer specs, the zero-copy parameter view,
// forward pass, full-batch loss and gradient of the whole net or of a block of layers.
#include "common.hpp"

namespace sensinet::bind {

template <class T>
const T* theta_arg(Model<T>& m, const py::object& theta) {
  if (theta.is_none()) return m.theta.data();
  py::array a = theta;
  return vector_arg<T>(a, "theta", m.arch.n_params());
}

template <class T>
void bind_model(py::module_& mod, const char* name) {
  using M = Model<T>;
  py::class_<M>(mod, name)
      .def(py::init([](const std::vector<SpecTuple>& specs, const std::string& loss) {
             return new M(make_architecture(specs, loss));
           }),
           py::arg("specs"), py::arg("loss"))
      .def_property_readonly(
          "parameters",
          [](py::object self) {
            M& m = self.cast<M&>();
            return py::array_t<T>({m.theta.size()}, {sizeof(T)}, m.theta.data(), self);
          },
          "Zero-copy view of the flat parameter vector (the array keeps the network alive).")
      .def_property_readonly("n_params", [](const M& m) { return m.arch.n_params(); })
      .def_property_readonly("n_layers", [](const M& m) { return m.arch.n_layers(); })
      .def_property_readonly("n_inputs", [](const M& m) { return m.arch.n_inputs(); })
      .def_property_readonly("n_outputs", [](const M& m) { return m.arch.n_outputs(); })
      .def_property_readonly("offsets", [](const M& m) { return m.arch.offsets; })
      .def("copy",
           [](const M& m) {
             auto* c = new M(m.arch);
             c->theta = m.theta;
             return c;
           })
      .def(
          "forward",
          [](M& m, const py::array& x, bool link, Index first, int n_threads) {
            if (first < 0 || first >= m.arch.n_layers())
              throw py::value_error("first: expected a layer index in [0, " + std::to_string(m.arch.n_layers()) +
                                    "), got " + std::to_string(first));
            auto X = matrix_arg<T>(x, "X", m.arch.layers[first].n_in);
            py::array_t<T> out({X.rows(), m.arch.n_outputs()});
            MatMap<T> O(out.mutable_data(), X.rows(), m.arch.n_outputs());
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              ThreadScope threads(n_threads);
              predict(m.arch, m.theta.data(), X, O, m.ws, first);
              if (link) {
                RowMatrix<T> tmp = O;
                apply_link(m.arch.loss, tmp);
                O = tmp;
              }
            }
            return out;
          },
          py::arg("X"), py::arg("link") = false, py::arg("first") = 0, py::arg("n_threads") = 0)
      .def(
          "layer_input",
          [](M& m, const py::array& x, Index layer, Index from, const py::object& theta, int n_threads) {
            const Index w = layer_input_width(m.arch, layer);
            if (from < 0 || from > layer)
              throw py::value_error("from_layer: expected an index in [0, layer=" + std::to_string(layer) +
                                    "], got " + std::to_string(from));
            const Index din = from == m.arch.n_layers() ? m.arch.n_outputs() : m.arch.layers[from].n_in;
            auto X = matrix_arg<T>(x, "X", din);
            const T* th = theta_arg(m, theta);
            py::array_t<T> out({X.rows(), w});
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              ThreadScope threads(n_threads);
              layer_input(m.arch, th, X, from, layer, MatMap<T>(out.mutable_data(), X.rows(), w), m.ws);
            }
            return out;
          },
          py::arg("X"), py::arg("layer"), py::arg("from_layer") = 0, py::arg("theta") = py::none(),
          py::arg("n_threads") = 0,
          "Input of layer `layer` (the output of layer-1; layer == n_layers gives the network output) for X, "
          "the input of layer `from_layer`; theta: evaluate at that parameter vector.")
      .def(
          "loss_and_grad",
          [](M& m, const py::array& x, const py::array& y, const py::object& theta, Index first, Index last,
             bool want_grad, int n_threads) {
            if (last < 0) last = m.arch.n_layers() - 1;
            try {
              m.arch.check_block(first, last);
            } catch (const std::invalid_argument& e) {
              throw py::value_error(e.what());
            }
            auto X = matrix_arg<T>(x, "X", m.arch.layers[first].n_in);
            auto Y = matrix_arg<T>(y, "Y", m.arch.n_outputs(), X.rows());
            const T* th = theta_arg(m, theta);
            const Index len = m.arch.offsets[last + 1] - m.arch.offsets[first];
            py::array_t<T> grad(want_grad ? len : 0);
            T loss;
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              ThreadScope threads(n_threads);
              loss = loss_and_grad(m.arch, th, X, Y, first, last, want_grad ? grad.mutable_data() : nullptr, m.ws);
            }
            return py::make_tuple(loss, grad);
          },
          py::arg("X"), py::arg("Y"), py::arg("theta") = py::none(), py::arg("first") = 0, py::arg("last") = -1,
          py::arg("want_grad") = true, py::arg("n_threads") = 0,
          "Full-batch J = mean loss + L2 and dJ/d(parameters of layers first..last). X is the input of layer "
          "`first`.");
}

void bind_network(py::module_& m) {
  bind_model<double>(m, "Model64");
  bind_model<float>(m, "Model32");
}

}  // namespace sensinet::bind
