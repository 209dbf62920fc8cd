// A network: its architecture, the one flat parameter vector, and a reusable workspace.
#pragma once
#include <mutex>

#include "sensinet/network.hpp"

namespace sensinet {

template <class T>
struct Model {
  Architecture arch;
  Vector<T> theta;  // never reallocated: Python holds a zero-copy view of it
  Workspace<T> ws;
  std::mutex mu;    // the workspace serves one call at a time (kernels run without the GIL)
  bool training = false;  // set while a training loop runs (its buffers live in the workspace)

  explicit Model(Architecture a) : arch(std::move(a)), theta(Vector<T>::Zero(arch.n_params())) {}
};

}  // namespace sensinet
