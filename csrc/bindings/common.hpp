// Shared binding helpers: argument checks that raise before Eigen sees bad input, thread scopes and the
// progress poll that calls back into Python.
#pragma once
#include <cmath>
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>

#include "sensinet/model.hpp"
#include "sensinet/train.hpp"

namespace sensinet::bind {

namespace py = pybind11;

// ---------------------------------------------------------------------------------------------- the GIL
// Re-acquiring the GIL while the interpreter shuts down ends the calling thread (CPython calls
// pthread_exit), and the forced unwind that starts in a destructor aborts the process ("terminate called
// without an active exception"). So at exit (begin_shutdown, registered with atexit) a stop flag is raised,
// and a thread that would then block on the GIL parks instead: it sleeps until the process ends. A thread
// announces itself at the gate before it reads the flag, and the exiting thread raises the flag before it
// reads the count, so none slips through; the exiting thread waits, with the GIL released, until the
// threads already at the gate have taken the GIL and gone back into Python. It never parks itself.
struct ShutdownState {
  std::atomic<bool> stop{false};
  std::atomic<int> at_gate{0};  // threads about to block on the GIL
  std::atomic<std::thread::id> exiting{};
};
inline ShutdownState& shutdown_state() {
  static ShutdownState s;  // one per extension module
  return s;
}

[[noreturn]] inline void park_thread() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
}

inline bool must_park() {
  const ShutdownState& s = shutdown_state();
  return s.stop.load() && s.exiting.load() != std::this_thread::get_id();
}

// Before blocking on the GIL: announce, then read the flag (see begin_shutdown for the other half).
inline void enter_gil_gate() {
  shutdown_state().at_gate.fetch_add(1);
  if (must_park()) {
    shutdown_state().at_gate.fetch_sub(1);
    park_thread();
  }
}
inline void leave_gil_gate() { shutdown_state().at_gate.fetch_sub(1); }

// Releases the GIL for its scope (replaces py::gil_scoped_release).
class NoGil {
 public:
  NoGil() : state_(PyEval_SaveThread()) {}
  NoGil(const NoGil&) = delete;
  NoGil& operator=(const NoGil&) = delete;
  ~NoGil() noexcept(false) {  // noexcept(false): a forced unwind from the acquisition may pass through
    enter_gil_gate();
    PyEval_RestoreThread(state_);
    leave_gil_gate();
  }

 private:
  PyThreadState* state_;
};

// Holds the GIL for its scope from inside a NoGil region (a poll calling Python; replaces
// py::gil_scoped_acquire).
class WithGil {
 public:
  WithGil() {
    enter_gil_gate();
    state_ = PyGILState_Ensure();
    leave_gil_gate();
  }
  WithGil(const WithGil&) = delete;
  WithGil& operator=(const WithGil&) = delete;
  ~WithGil() {
    // Without the GIL here, CPython is ending this thread from inside the callback (a forced unwind after
    // it dropped the GIL): releasing it again would be fatal, so the thread stays out.
    if (!PyGILState_Check()) park_thread();
    PyGILState_Release(state_);
  }

 private:
  PyGILState_STATE state_;
};

// Called at interpreter exit (with the GIL): raise the stop flag, then release the GIL until no thread is
// at the gate (at most `timeout` seconds). Returns how many still are.
inline int begin_shutdown(double timeout) {
  ShutdownState& s = shutdown_state();
  s.exiting.store(std::this_thread::get_id());
  s.stop.store(true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  while (s.at_gate.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    PyThreadState* st = PyEval_SaveThread();  // a thread at the gate takes the GIL and returns to Python
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    PyEval_RestoreThread(st);
  }
  return s.at_gate.load();
}

// A layer spec as Python passes it: (kind, n_in, n_out, n_hidden, activation, alpha, l2).
using SpecTuple = std::tuple<std::string, Index, Index, Index, std::string, double, double>;

// The engine's architecture from Python's spec tuples; Architecture validates (std::invalid_argument ->
// ValueError).
inline Architecture make_architecture(const std::vector<SpecTuple>& specs, const std::string& loss) {
  std::vector<LayerSpec> layers;
  for (const auto& [kind, n_in, n_out, n_hidden, act, alpha, l2] : specs) {
    LayerSpec s;
    s.kind = parse_kind(kind);
    s.n_in = n_in;
    s.n_out = n_out;
    s.n_hidden = n_hidden;
    s.act = parse_activation(act);
    s.alpha = alpha;
    s.l2 = l2;
    layers.push_back(s);
  }
  return Architecture(std::move(layers), parse_loss(loss));
}

template <class T>
constexpr const char* dtype_name() {
  return std::is_same_v<T, double> ? "float64" : "float32";
}

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// A C-contiguous 2-D array of dtype T with `cols` columns (cols < 0: any). Raises TypeError / ValueError
// naming the argument.
template <class T>
CStridedMap<T> matrix_arg(const py::array& a, const char* name, Index cols = -1, Index rows = -1) {
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected a " + dtype_name<T>() + " array, got dtype " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + ": expected a 2-D array, got shape " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  if (a.shape(0) < 1) throw py::value_error(std::string(name) + ": expected at least one row, got shape " + shape_str(a));
  if (cols >= 0 && a.shape(1) != cols)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(cols) + " columns, got shape " +
                          shape_str(a));
  if (rows >= 0 && a.shape(0) != rows)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(rows) + " rows, got shape " +
                          shape_str(a));
  return CStridedMap<T>(static_cast<const T*>(a.data()), a.shape(0), a.shape(1), Eigen::OuterStride<>(a.shape(1)));
}

// A writable contiguous 1-D array of dtype T and length n.
template <class T>
T* vector_arg(py::array& a, const char* name, Index n) {
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected a " + dtype_name<T>() + " array, got dtype " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + ": expected shape (" + std::to_string(n) + ",), got " + shape_str(a));
  if (!(a.flags() & py::array::c_style) || !a.writeable())
    throw py::value_error(std::string(name) + ": expected a writable contiguous array");
  return static_cast<T*>(a.mutable_data());
}

// A contiguous 1-D array of dtype T and length n (read only).
template <class T>
const T* cvector_arg(const py::array& a, const char* name, Index n) {
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected a " + dtype_name<T>() + " array, got dtype " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + ": expected shape (" + std::to_string(n) + ",), got " + shape_str(a));
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": expected a contiguous array");
  return static_cast<const T*>(a.data());
}

// Sample weights: None (nullptr) or a contiguous 1-D array of n finite weights >= 0 with a positive sum.
template <class T>
const T* weights_arg(const py::object& w, Index n) {
  if (w.is_none()) return nullptr;
  const T* p = cvector_arg<T>(py::reinterpret_borrow<py::array>(w), "sample_weight", n);
  T sum = 0;
  for (Index i = 0; i < n; ++i) {
    if (!(p[i] >= T(0)) || !std::isfinite(p[i]))
      throw py::value_error("sample_weight: expected finite weights >= 0, got " + std::to_string(double(p[i])) +
                            " at index " + std::to_string(i));
    sum += p[i];
  }
  if (!(sum > T(0))) throw py::value_error("sample_weight: expected a positive sum of weights, got all zeros");
  return p;
}

// Trainable mask: None (nullptr) or a contiguous 1-D array of n_params entries, each 0 (frozen) or 1.
template <class T>
const T* mask_arg(const py::object& k, Index n) {
  if (k.is_none()) return nullptr;
  const T* p = cvector_arg<T>(py::reinterpret_borrow<py::array>(k), "trainable", n);
  for (Index i = 0; i < n; ++i)
    if (p[i] != T(0) && p[i] != T(1))
      throw py::value_error("trainable: expected entries 0 or 1, got " + std::to_string(double(p[i])) +
                            " at index " + std::to_string(i));
  return p;
}

// The optimizer of a train() call, validated (the CPU and CUDA bindings share the checks and messages).
inline OptConfig opt_config(const std::string& optimizer, double lr, double momentum, bool nesterov, double beta1,
                            double beta2, double eps) {
  OptConfig oc;
  oc.kind = parse_optimizer(optimizer);
  if (!(lr > 0)) throw py::value_error("lr: expected > 0, got " + std::to_string(lr));
  oc.lr = lr;
  oc.momentum = momentum;
  oc.nesterov = nesterov;
  oc.beta1 = beta1;
  oc.beta2 = beta2;
  oc.eps = eps;
  return oc;
}

// The loop settings of a train() call, validated; a Python callback means polls read the weights.
inline TrainConfig train_config(Index epochs, Index batch_size, bool shuffle, uint64_t seed, Index first, Index last,
                                Index poll_every, Index max_steps, const py::object& callback) {
  if (epochs < 0) throw py::value_error("epochs: expected >= 0, got " + std::to_string(epochs));
  if (batch_size < 1) throw py::value_error("batch_size: expected >= 1, got " + std::to_string(batch_size));
  TrainConfig tc;
  tc.epochs = epochs;
  tc.batch_size = batch_size;
  tc.shuffle = shuffle;
  tc.seed = seed;
  tc.first = first;
  tc.last = last;
  tc.poll_every = poll_every;
  tc.max_steps = max_steps;
  tc.poll_reads_weights = !callback.is_none();
  return tc;
}

// Marks a model as training for the duration of a loop, by the thread that runs it: a second loop on the
// same network (from that loop's callback, or from another thread) would overwrite the loop's buffers.
inline bool is_training(const std::atomic<std::thread::id>& trainer) { return trainer.load() != std::thread::id{}; }

struct TrainingGuard {
  std::atomic<std::thread::id>& owner;
  explicit TrainingGuard(std::atomic<std::thread::id>& o) : owner(o) {
    std::thread::id none{};
    if (!owner.compare_exchange_strong(none, std::this_thread::get_id())) {
      if (none == std::this_thread::get_id())
        throw py::value_error("network: already training (a callback may not train the same network)");
      throw py::value_error(
          "network: already training in another thread; a network trains in one thread at a time "
          "(give each thread its own copy: net.copy())");
    }
  }
  TrainingGuard(const TrainingGuard&) = delete;
  TrainingGuard& operator=(const TrainingGuard&) = delete;
  ~TrainingGuard() { owner.store(std::thread::id{}); }
};

// Sets the calling thread's thread count for the engine's kernels during one call (n <= 0: one thread).
// Per thread, so concurrent calls with different counts do not interfere.
struct ThreadScope {
  int saved;
  explicit ThreadScope(int n) : saved(engine_threads()) { engine_threads() = n > 0 ? n : 1; }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;
  ~ThreadScope() { engine_threads() = saved; }
};

// Wraps an optional Python callable as an engine's poll. Runs with the GIL
// re-acquired and the model's lock released (the callback may evaluate the network), checks for
// KeyboardInterrupt; a Python exception stops the loop and is re-raised after it.
inline std::function<bool(const Progress&)> make_poll(py::object callback, std::unique_lock<std::mutex>& lock) {
  return [callback, &lock](const Progress& p) -> bool {
    lock.unlock();
    struct Relock {
      std::unique_lock<std::mutex>& l;
      ~Relock() { l.lock(); }
    } relock{lock};
    WithGil gil;
    if (PyErr_Occurred()) return true;  // an earlier callback raised: no more Python until it propagates
    if (PyErr_CheckSignals() != 0) return true;
    if (callback.is_none() || !p.scheduled) return false;
    try {
      py::dict info;
      info["epoch"] = p.epoch;
      info["step"] = p.step;
      info["loss"] = p.loss;
      info["epoch_end"] = p.epoch_end;
      if (p.has_val) info["val_loss"] = p.val_loss;
      py::object r = callback(info);
      return !r.is_none() && r.cast<bool>();
    } catch (py::error_already_set& e) {
      e.restore();
      return true;
    }
  };
}

// Width of the input of layer `layer` (layer == n_layers: the network output); raises for a bad index.
inline Index layer_input_width(const Architecture& a, Index layer) {
  if (layer < 0 || layer > a.n_layers())
    throw py::value_error("layer: expected an index in [0, " + std::to_string(a.n_layers()) + "], got " +
                          std::to_string(layer));
  return layer == 0 ? a.n_inputs() : a.layers[layer - 1].n_out;
}

// What a training loop's status is called in Python (the CPU and CUDA engines share TrainStatus).
inline const char* status_name(TrainStatus s) {
  switch (s) {
    case TrainStatus::Completed: return "completed";
    case TrainStatus::Stopped: return "stopped";
    case TrainStatus::Diverged: return "diverged";
  }
  return "?";
}

inline void rethrow_pending() {
  if (PyErr_Occurred()) throw py::error_already_set();
}

}  // namespace sensinet::bind
