// sensinet._cuda: the optional CUDA backend. pybind11 only: argument checks (the CPU bindings' helpers),
// GIL release around device work, conversion; the engine is cuda_network.{hpp,cu}.
// CudaModel64 / CudaModel32 take the spec tuples and loss of _core.Model64 / Model32.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common.hpp"  // csrc/bindings: matrix_arg, vector_arg, cvector_arg, TrainingGuard, rethrow_pending
#include "cuda_network.hpp"
#include "sensinet/sensitivity.hpp"

#ifndef SENSINET_CUDA_ARCHITECTURES
#define SENSINET_CUDA_ARCHITECTURES "unknown"
#endif

namespace sensinet::bind {

namespace cu = sensinet::cuda;

// The device loop's settings: the validated CPU ones plus the device's own (cuda_network.hpp).
static cu::DeviceTrainConfig device_config(const TrainConfig& c, Index input_layer, bool graphs, Index x_key,
                                           Index y_key, Index xv_key, Index yv_key, Index state_key,
                                           bool state_upload) {
  cu::DeviceTrainConfig d;
  static_cast<TrainConfig&>(d) = c;
  d.input_layer = input_layer;
  d.graphs = graphs;
  d.x_key = x_key;
  d.y_key = y_key;
  d.xv_key = xv_key;
  d.yv_key = yv_key;
  d.state_key = state_key;
  d.state_upload = state_upload;
  return d;
}

template <class T>
struct CudaModel {
  Architecture arch;
  cu::CudaNetwork<T> net;
  std::mutex mu;          // one call at a time (device work runs without the GIL)
  std::atomic<std::thread::id> trainer{};  // the thread running a training loop (none: no loop runs)
  CudaModel(Architecture a, int device) : arch(a), net(std::move(a), device) {}
};

template <class T>
void check_block(const CudaModel<T>& m, Index first, Index& last) {
  if (last < 0) last = m.arch.n_layers() - 1;
  try {
    m.arch.check_block(first, last);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

static Index resolve_input_layer(const py::object& input_layer, Index first) {
  if (input_layer.is_none()) return first;
  const Index l = input_layer.cast<Index>();
  if (l < 0 || l > first)
    throw py::value_error("input_layer: expected a layer index in [0, first=" + std::to_string(first) + "], got " +
                          std::to_string(l));
  return l;
}

// The engine's poll: re-acquires the GIL with the model's lock released (the callback may evaluate the
// network), checks for KeyboardInterrupt; a Python exception stops the loop and is re-raised after it.
// As common.hpp's make_poll, plus the validation objective in the info dict.

template <class T>
void bind_cuda_model(py::module_& mod, const char* name) {
  using M = CudaModel<T>;
  py::class_<M>(mod, name,
                "A network on a CUDA device: parameters, caches, training state and data in GPU memory. Built "
                "from the spec tuples and loss of _core.Model64 / Model32.")
      .def(py::init([](const std::vector<SpecTuple>& specs, const std::string& loss, int device) {
             Architecture a = make_architecture(specs, loss);
             NoGil nogil;
             return new M(std::move(a), device);
           }),
           py::arg("specs"), py::arg("loss"), py::arg("device") = 0)
      .def_property_readonly("n_params", [](const M& m) { return m.arch.n_params(); })
      .def_property_readonly("n_layers", [](const M& m) { return m.arch.n_layers(); })
      .def_property_readonly("n_inputs", [](const M& m) { return m.arch.n_inputs(); })
      .def_property_readonly("n_outputs", [](const M& m) { return m.arch.n_outputs(); })
      .def_property_readonly("offsets", [](const M& m) { return m.arch.offsets; })
      .def_property_readonly("device", [](const M& m) { return m.net.device(); })
      .def_property_readonly("dtype", [](const M&) { return py::dtype::of<T>(); })
      .def_property(
          "tf32", [](const M& m) { return m.net.tf32(); },
          [](M& m, bool on) {
            if (on && std::is_same_v<T, double>)
              throw py::value_error("precision: 'tf32' applies to float32 networks, this one is float64");
            NoGil nogil;
            std::lock_guard<std::mutex> lock(m.mu);
            m.net.set_tf32(on);
          },
          "TF32 tensor-core math for the float32 GEMMs (off by default).")
      .def(
          "set_parameters",
          [](M& m, const py::array& theta) {
            const T* p = cvector_arg<T>(theta, "theta", m.arch.n_params());
            NoGil nogil;
            std::lock_guard<std::mutex> lock(m.mu);
            m.net.set_parameters(p);
          },
          py::arg("theta"), "Upload a host parameter vector (n_params,) into the device's flat vector.")
      .def(
          "get_parameters",
          [](M& m, py::object out_obj) {
            py::array out = out_obj.is_none() ? py::array(py::array_t<T>(m.arch.n_params())) : py::array(out_obj);
            T* p = vector_arg<T>(out, "out", m.arch.n_params());
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              m.net.get_parameters(p);
            }
            return out;
          },
          py::arg("out") = py::none(),
          "A host copy of the device's flat parameter vector (into `out`, a writable (n_params,) array, if given).")
      .def(
          "forward",
          [](M& m, const py::array& x, bool link, Index first, Index x_key) {
            if (first < 0 || first >= m.arch.n_layers())
              throw py::value_error("first: expected a layer index in [0, " + std::to_string(m.arch.n_layers()) +
                                    "), got " + std::to_string(first));
            auto X = matrix_arg<T>(x, "X", m.arch.layers[first].n_in);
            py::array_t<T> out({X.rows(), m.arch.n_outputs()});
            T* o = out.mutable_data();
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              m.net.forward(X.data(), X.rows(), first, link, o, x_key);
            }
            return out;
          },
          py::arg("X"), py::arg("link") = false, py::arg("first") = 0, py::arg("x_key") = 0,
          "Network output (logits for classification heads; link: probabilities); X is the input of `first`.")
      .def(
          "layer_input",
          [](M& m, const py::array& x, Index layer, Index x_key) {
            const Index w = layer_input_width(m.arch, layer);
            auto X = matrix_arg<T>(x, "X", m.arch.n_inputs());
            py::array_t<T> out({X.rows(), w});
            T* o = out.mutable_data();
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              m.net.layer_input(X.data(), X.rows(), layer, o, x_key);
            }
            return out;
          },
          py::arg("X"), py::arg("layer"), py::arg("x_key") = 0)
      .def(
          "loss_and_grad",
          [](M& m, const py::array& x, const py::array& y, Index first, Index last, bool want_grad,
             const py::object& theta, const py::object& input_layer, Index x_key, Index y_key) {
            check_block(m, first, last);
            const Index in_layer = resolve_input_layer(input_layer, first);
            auto X = matrix_arg<T>(x, "X", m.arch.layers[in_layer].n_in);
            auto Y = matrix_arg<T>(y, "Y", m.arch.n_outputs(), X.rows());
            const T* th = nullptr;
            py::array theta_arr;
            if (!theta.is_none()) {
              theta_arr = py::array(theta);
              th = cvector_arg<T>(theta_arr, "theta", m.arch.n_params());
            }
            const Index len = m.arch.offsets[last + 1] - m.arch.offsets[first];
            py::array_t<T> grad(want_grad ? len : 0);
            T* g = want_grad ? grad.mutable_data() : nullptr;
            T loss;
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              loss = m.net.loss_and_grad(X.data(), Y.data(), X.rows(), in_layer, first, last, th, g, x_key, y_key);
            }
            return py::make_tuple(loss, grad);
          },
          py::arg("X"), py::arg("Y"), py::arg("first") = 0, py::arg("last") = -1, py::arg("want_grad") = true,
          py::arg("theta") = py::none(), py::arg("input_layer") = py::none(), py::arg("x_key") = 0,
          py::arg("y_key") = 0,
          "Full-batch J = mean loss + L2 and dJ/d(parameters of layers first..last). X is the input of "
          "`input_layer` (default: of `first`); the block input is computed on the device.")
      .def(
          "train",
          [](M& m, const py::array& x, const py::array& y, const std::string& optimizer, double lr, double momentum,
             bool nesterov, double beta1, double beta2, double eps, py::array state_m, py::array state_v, long long t,
             Index epochs, Index batch_size, bool shuffle, uint64_t seed, Index first, Index last, Index poll_every,
             Index max_steps, py::object callback, int /*n_threads*/, const py::object& input_layer,
             const py::object& x_val, const py::object& y_val, bool cuda_graphs, Index state_key, bool state_upload,
             Index x_key, Index y_key, Index xv_key, Index yv_key) {
            check_block(m, first, last);
            const Index in_layer = resolve_input_layer(input_layer, first);
            auto X = matrix_arg<T>(x, "X", m.arch.layers[in_layer].n_in);
            auto Y = matrix_arg<T>(y, "Y", m.arch.n_outputs(), X.rows());
            const OptConfig opt = opt_config(optimizer, lr, momentum, nesterov, beta1, beta2, eps);
            const TrainConfig loop = train_config(epochs, batch_size, shuffle, seed, first, last, poll_every,
                                                  max_steps, callback);
            T* sm = vector_arg<T>(state_m, "state_m", m.arch.n_params());
            T* sv = vector_arg<T>(state_v, "state_v", m.arch.n_params());
            std::optional<CStridedMap<T>> XV, YV;
            py::array xv_arr, yv_arr;  // keep converted arrays alive for the call
            if (!x_val.is_none() || !y_val.is_none()) {
              if (x_val.is_none() || y_val.is_none())
                throw py::value_error("X_val, Y_val: give both or neither");
              xv_arr = py::array(x_val);
              yv_arr = py::array(y_val);
              XV.emplace(matrix_arg<T>(xv_arr, "X_val", m.arch.n_inputs()));
              YV.emplace(matrix_arg<T>(yv_arr, "Y_val", m.arch.n_outputs(), XV->rows()));
            }
            const cu::DeviceTrainConfig tc = device_config(loop, in_layer, cuda_graphs, x_key, y_key, xv_key, yv_key,
                                                           state_key, state_upload);
            TrainingGuard guard(m.trainer);
            cu::TrainOutcome r;
            {
              NoGil nogil;
              std::unique_lock<std::mutex> lock(m.mu);
              auto poll = make_poll(callback, lock);
              r = m.net.train(X.data(), Y.data(), X.rows(), XV ? XV->data() : nullptr, YV ? YV->data() : nullptr,
                              XV ? XV->rows() : 0, opt, sm, sv, t, tc, poll);
            }
            rethrow_pending();
            py::dict d;
            d["status"] = status_name(r.status);
            d["steps"] = r.steps;
            d["epochs"] = r.epochs_done;
            d["epoch_loss"] = r.epoch_loss;
            d["val_loss"] = r.val_loss;
            d["last_loss"] = r.last_loss;
            d["t"] = r.t;
            d["graphs"] = r.graphs;
            return d;
          },
          py::arg("X"), py::arg("Y"), py::kw_only(), py::arg("optimizer"), py::arg("lr"), py::arg("momentum") = 0.0,
          py::arg("nesterov") = false, py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8,
          py::arg("state_m"), py::arg("state_v"), py::arg("t") = 0, py::arg("epochs") = 1, py::arg("batch_size") = 32,
          py::arg("shuffle") = true, py::arg("seed") = 0, py::arg("first") = 0, py::arg("last") = -1,
          py::arg("poll_every") = 0, py::arg("max_steps") = -1, py::arg("callback") = py::none(),
          py::arg("n_threads") = 0, py::arg("input_layer") = py::none(), py::arg("X_val") = py::none(),
          py::arg("Y_val") = py::none(), py::arg("cuda_graphs") = true, py::arg("state_key") = 0,
          py::arg("state_upload") = true, py::arg("x_key") = 0, py::arg("y_key") = 0, py::arg("xv_key") = 0,
          py::arg("yv_key") = 0,
          "Minibatch training on the device with the keyword arguments of _core.train (the state arrays are "
          "uploaded, kept on the device and written back on return). Extra: input_layer (X is the input of "
          "that layer; the block input is computed on the device), X_val/Y_val (objective at each epoch end, "
          "passed to the callback as val_loss), cuda_graphs (replay full minibatch steps as CUDA graphs), "
          "state_key / state_upload (keep the optimizer state on the device under that key: no write-back), "
          "x_key / y_key / xv_key / yv_key (keep those arrays' device copies for later calls).")
      .def(
          "sensitivities",
          [](M& m, const py::array& x, const py::object& y, bool wrt_loss,
             const std::vector<std::pair<Index, int>>& raw_sites, int reduce, Index x_key, Index y_key) {
            auto X = matrix_arg<T>(x, "X", m.arch.n_inputs());
            std::optional<CStridedMap<T>> Y;
            py::array y_arr;  // keeps a converted array alive for the call
            if (wrt_loss) {
              if (y.is_none()) throw py::value_error("y: required for wrt='loss'");
              y_arr = py::array(y);
              Y.emplace(matrix_arg<T>(y_arr, "Y", m.arch.n_outputs(), X.rows()));
            }
            if (reduce < 0 || reduce > 2) throw py::value_error("reduce: expected 0 (mean_abs), 1 (rms) or 2 (mean)");
            std::vector<Site> sites;
            for (const auto& [layer, part] : raw_sites) sites.push_back(Site{layer, part});
            try {
              check_sites(m.arch, sites);
            } catch (const std::invalid_argument& e) {
              throw py::value_error(e.what());
            }

            std::vector<std::vector<double>> acc;
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              m.net.sensitivities(X.data(), Y ? Y->data() : nullptr, X.rows(), wrt_loss, sites, reduce, acc, x_key, y_key);
            }
            const Index K = wrt_loss ? 1 : m.arch.n_outputs();
            py::list mats;
            for (std::size_t i = 0; i < sites.size(); ++i) {
              const Index w = site_width(m.arch, sites[i]);
              py::array_t<double> out({K, w});
              double* o = out.mutable_data();
              for (Index j = 0; j < K * w; ++j) {
                const double v = acc[i][j] / double(X.rows());
                o[j] = reduce == int(Reduce::RMS) ? std::sqrt(v) : v;
              }
              mats.append(out);
            }
            return mats;
          },
          py::arg("X"), py::arg("Y"), py::arg("wrt_loss"), py::arg("sites"), py::arg("reduce") = 0,
          py::arg("x_key") = 0, py::arg("y_key") = 0,
          "Reduced sensitivity matrices per site (as _core.sensitivities without per_sample): a list of "
          "(K, width) float64 arrays.")
      .def("device_name", [](const M& m) { return m.net.device_name(); })
      .def("memory_info",
           [](M& m) {
             cu::MemoryInfo i;
             {
               NoGil nogil;
               std::lock_guard<std::mutex> lock(m.mu);
               i = m.net.memory_info();
             }
             py::dict d;
             d["free"] = i.free;
             d["total"] = i.total;
             d["model_bytes"] = i.model_bytes;
             d["resident_bytes"] = i.resident_bytes;
             d["process_bytes"] = cu::bytes_in_use();
             return d;
           },
           "Device memory (cudaMemGetInfo free/total), this model's buffers and all sensinet buffers, in bytes.")
      .def("transfer_stats",
           [](const M& m) {
             const cu::TransferStats s = m.net.transfer_stats();
             py::dict d;
             d["h2d_calls"] = s.h2d_calls;
             d["h2d_bytes"] = s.h2d_bytes;
             d["d2h_calls"] = s.d2h_calls;
             d["d2h_bytes"] = s.d2h_bytes;
             d["h2d_data_bytes"] = s.h2d_data_bytes;
             d["h2d_param_bytes"] = s.h2d_param_bytes;
             d["h2d_state_bytes"] = s.h2d_state_bytes;
             d["d2h_param_bytes"] = s.d2h_param_bytes;
             d["d2h_state_bytes"] = s.d2h_state_bytes;
             return d;
           },
           "Host<->device copies made by this model since the last reset (count and bytes).")
      .def("reset_transfer_stats", [](M& m) { m.net.reset_transfer_stats(); })
      .def(
          "relu_patterns",
          [](M& m, const py::array& x, const std::vector<Index>& layers, Index x_key) {
            auto X = matrix_arg<T>(x, "X", m.arch.n_inputs());
            for (Index l : layers)
              if (l < 0 || l >= m.arch.n_layers())
                throw py::value_error("layers: expected indices in [0, " + std::to_string(m.arch.n_layers()) +
                                      "), got " + std::to_string(l));
            Index bits = 0;
            for (Index l : layers) bits += m.arch.layers[l].inner_width();
            const Index words = std::max<Index>(1, (bits + 63) / 64);
            py::array_t<std::uint64_t> out({X.rows(), words});
            std::uint64_t* o = out.mutable_data();
            {
              NoGil nogil;
              std::lock_guard<std::mutex> lock(m.mu);
              m.net.relu_patterns(X.data(), X.rows(), layers, o, words, x_key);
            }
            return out;
          },
          py::arg("X"), py::arg("layers"), py::arg("x_key") = 0,
          "Bits z > 0 of the neurons of `layers` (inner neurons of residual blocks), 64 per uint64 word, as "
          "_core.relu_patterns.")
      .def("has_state", [](M& m, Index key) { return m.net.has_state(key); }, py::arg("key"))
      .def(
          "download_state",
          [](M& m, Index key, py::array state_m, py::array state_v) {
            T* pm = vector_arg<T>(state_m, "state_m", m.arch.n_params());
            T* pv = vector_arg<T>(state_v, "state_v", m.arch.n_params());
            NoGil nogil;
            std::lock_guard<std::mutex> lock(m.mu);
            m.net.download_state(key, pm, pv);
          },
          py::arg("key"), py::arg("state_m"), py::arg("state_v"),
          "Copy the optimizer state kept under `key` into host arrays (it stays on the device).")
      .def(
          "drop_state",
          [](M& m, Index key) {
            if (is_training(m.trainer)) throw py::value_error("drop_state: the network is training");
            NoGil nogil;
            std::lock_guard<std::mutex> lock(m.mu);
            m.net.drop_state(key);
          },
          py::arg("key"))
      .def(
          "forget_data",
          [](M& m, Index key) {
            if (is_training(m.trainer)) return;  // the loop may use it; evicted later like any other copy
            NoGil nogil;
            std::lock_guard<std::mutex> lock(m.mu);
            m.net.forget_data(key);
          },
          py::arg("key"))
      .def(
          "free_workspace",
          [](M& m) {
            if (is_training(m.trainer)) throw py::value_error("free_workspace: the network is training");
            NoGil nogil;
            std::lock_guard<std::mutex> lock(m.mu);
            m.net.free_workspace();
          },
          "Free the caches, data and training buffers kept for the next call (the parameters stay).");
}

}  // namespace sensinet::bind

PYBIND11_MODULE(_cuda, m) {
  namespace py = pybind11;
  namespace cu = sensinet::cuda;
  using namespace sensinet::bind;
  m.doc() = "sensinet CUDA backend (private; use sensinet.cuda and Network(..., device='cuda'))";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cu::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const cu::CudaError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  bind_cuda_model<double>(m, "CudaModel64");
  bind_cuda_model<float>(m, "CudaModel32");
  m.def(
      "available",
      []() {
        try {
          return cu::device_count(nullptr) > 0;
        } catch (...) {
          return false;
        }
      },
      "True when a CUDA device can be used (never raises).");
  m.def(
      "probe",
      []() {
        std::string err;
        const int n = cu::device_count(&err);
        return py::make_tuple(n, err);
      },
      "(device count, reason when 0).");
  m.def("devices", []() {
    py::list out;
    for (const auto& d : cu::device_list()) {
      py::dict i;
      i["index"] = d.index;
      i["name"] = d.name;
      i["total_memory"] = d.total_memory;
      i["compute_capability"] = py::make_tuple(d.major, d.minor);
      i["multiprocessors"] = d.multiprocessors;
      out.append(i);
    }
    return out;
  });
  m.def("begin_shutdown", &begin_shutdown, py::arg("timeout") = 2.0,
        "At interpreter exit: park threads inside the engine instead of letting CPython end them.");
  m.def("bytes_in_use", &cu::bytes_in_use, "Bytes held by all sensinet device buffers of this process.");
  m.def(
      "_try_alloc",
      [](std::size_t bytes, int device) {
        NoGil nogil;
        cu::try_allocate(bytes, device);
      },
      py::arg("bytes"), py::arg("device") = 0, "Allocate and free `bytes` on the device (tests).");
  m.def("driver_version", &cu::driver_version, "CUDA driver version (0 without a driver).");
  py::dict info;
  info["cuda_runtime"] = cu::runtime_version();
  info["cublas"] = cu::cublas_version();
  info["architectures"] = SENSINET_CUDA_ARCHITECTURES;
  m.attr("build_info") = info;
}
