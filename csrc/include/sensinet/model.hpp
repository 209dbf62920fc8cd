// A network: its architecture, the one flat parameter vector, and a reusable workspace.
#pragma once
#include <atomic>
#include <mutex>
#include <thread>

#include "sensinet/network.hpp"

namespace sensinet {

template <class T>
struct Model {
  Architecture arch;
  Vector<T> theta;  // never reallocated: Python holds a zero-copy view of it
  Workspace<T> ws;
  std::mutex mu;    // the workspace serves one call at a time (kernels run without the GIL)
  std::atomic<std::thread::id> trainer{};  // the thread running a training loop (none: no loop runs)

  explicit Model(Architecture a) : arch(std::move(a)), theta(Vector<T>::Zero(arch.n_params())) {}
};

}  // namespace sensinet
