// Training entry points: minibatch SGD/Adam epochs and full-batch L-BFGS, both on the whole net or on a
// block of layers, run in C++ without the GIL.
#include "common.hpp"
#include "sensinet/lbfgs.hpp"

namespace sensinet::bind {


static const char* status_name(LbfgsStatus s) {
  switch (s) {
    case LbfgsStatus::GradientTolerance: return "gtol";
    case LbfgsStatus::FunctionTolerance: return "ftol";
    case LbfgsStatus::MaxIterations: return "max_iter";
    case LbfgsStatus::Stopped: return "stopped";
    case LbfgsStatus::LineSearchFailed: return "line_search_failed";
    case LbfgsStatus::Diverged: return "diverged";
  }
  return "?";
}

template <class T>
void check_block(const Model<T>& m, Index first, Index& last) {
  if (last < 0) last = m.arch.n_layers() - 1;
  try {
    m.arch.check_block(first, last);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
}

// Runs a training loop without the GIL, holding the model's lock except while a poll calls Python; a
// callback's exception (or Ctrl-C) is raised once the loop has stopped with consistent weights.
template <class T, class Loop>
auto run_training(Model<T>& m, const py::object& callback, int n_threads, Loop loop) {
  TrainingGuard guard(m.trainer);
  decltype(loop(std::function<bool(const Progress&)>())) r;
  {
    NoGil nogil;
    std::unique_lock<std::mutex> lock(m.mu);
    auto poll = make_poll(callback, lock);
    ThreadScope threads(n_threads);
    r = loop(poll);
  }
  rethrow_pending();
  return r;
}

template <class T>
void bind_train_for(py::module_& mod) {
  mod.def(
      "train",
      [](Model<T>& m, const py::array& x, const py::array& y, const std::string& optimizer, double lr,
         double momentum, bool nesterov, double beta1, double beta2, double eps, py::array state_m,
         py::array state_v, long long t, Index epochs, Index batch_size, bool shuffle, uint64_t seed, Index first,
         Index last, Index poll_every, Index max_steps, py::object callback, int n_threads,
         py::object sample_weight, py::object trainable) {
        check_block(m, first, last);
        auto X = matrix_arg<T>(x, "X", m.arch.layers[first].n_in);
        auto Y = matrix_arg<T>(y, "Y", m.arch.n_outputs(), X.rows());
        const T* w = weights_arg<T>(sample_weight, X.rows());
        const T* keep = mask_arg<T>(trainable, m.arch.n_params());
        const OptConfig oc = opt_config(optimizer, lr, momentum, nesterov, beta1, beta2, eps);
        const TrainConfig tc = train_config(epochs, batch_size, shuffle, seed, first, last, poll_every, max_steps,
                                            callback);
        OptState<T> st;
        st.m = vector_arg<T>(state_m, "state_m", m.arch.n_params());
        st.v = vector_arg<T>(state_v, "state_v", m.arch.n_params());
        st.t = t;
        TrainResult r = run_training(m, callback, n_threads, [&](const std::function<bool(const Progress&)>& poll) {
          return train(m.arch, m.theta.data(), X, Y, oc, st, tc, poll, m.ws, w, keep);
        });
        py::dict d;
        d["status"] = status_name(r.status);
        d["steps"] = r.steps;
        d["epochs"] = r.epochs_done;
        d["epoch_loss"] = r.epoch_loss;
        d["last_loss"] = r.last_loss;
        d["t"] = st.t;
        return d;
      },
      py::arg("model"), py::arg("X"), py::arg("Y"), py::kw_only(), py::arg("optimizer"), py::arg("lr"),
      py::arg("momentum") = 0.0, py::arg("nesterov") = false, py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
      py::arg("eps") = 1e-8, py::arg("state_m"), py::arg("state_v"), py::arg("t") = 0, py::arg("epochs") = 1,
      py::arg("batch_size") = 32, py::arg("shuffle") = true, py::arg("seed") = 0, py::arg("first") = 0,
      py::arg("last") = -1, py::arg("poll_every") = 0, py::arg("max_steps") = -1,
      py::arg("callback") = py::none(), py::arg("n_threads") = 0, py::arg("sample_weight") = py::none(),
      py::arg("trainable") = py::none());

  mod.def(
      "lbfgs",
      [](Model<T>& m, const py::array& x, const py::array& y, Index max_iter, Index history, double gtol,
         double ftol, Index first, Index last, Index max_evals, py::object callback, int n_threads,
         py::object sample_weight, py::object trainable) {
        check_block(m, first, last);
        auto X = matrix_arg<T>(x, "X", m.arch.layers[first].n_in);
        auto Y = matrix_arg<T>(y, "Y", m.arch.n_outputs(), X.rows());
        const T* w = weights_arg<T>(sample_weight, X.rows());
        const T* keep = mask_arg<T>(trainable, m.arch.n_params());
        if (max_iter < 0) throw py::value_error("max_iter: expected >= 0, got " + std::to_string(max_iter));
        if (history < 1) throw py::value_error("history: expected >= 1, got " + std::to_string(history));
        LbfgsConfig c;
        c.max_iter = max_iter;
        c.history = history;
        c.gtol = gtol;
        c.ftol = ftol;
        c.first = first;
        c.last = last;
        c.max_evals = max_evals;
        LbfgsResult r = run_training(m, callback, n_threads, [&](const std::function<bool(const Progress&)>& poll) {
          return lbfgs(m.arch, m.theta.data(), X, Y, c, poll, m.ws, w, keep);
        });
        py::dict d;
        d["status"] = status_name(r.status);
        d["iterations"] = r.iterations;
        d["evaluations"] = r.evaluations;
        d["loss"] = r.loss;
        d["loss_history"] = r.loss_history;
        return d;
      },
      py::arg("model"), py::arg("X"), py::arg("Y"), py::kw_only(), py::arg("max_iter") = 100,
      py::arg("history") = 10, py::arg("gtol") = 1e-6, py::arg("ftol") = 1e-12, py::arg("first") = 0,
      py::arg("last") = -1, py::arg("max_evals") = -1, py::arg("callback") = py::none(), py::arg("n_threads") = 0,
      py::arg("sample_weight") = py::none(), py::arg("trainable") = py::none());
}

void bind_train(py::module_& m) {
  bind_train_for<double>(m);
  bind_train_for<float>(m);
}

}  // namespace sensinet::bind
