// Scalar-generic matrix aliases shared by every kernel. Row-major throughout, matching NumPy's C order,
// so arrays cross the boundary without copies.
#pragma once
#include <Eigen/Core>
#include <cstdint>
#include <type_traits>

#include "sensinet/config.hpp"

namespace sensinet {

static_assert(std::is_same_v<Eigen::Index, Index>, "config.hpp's Index must be Eigen's index type");

// Threads of the engine's own parallel loops for the calling thread's current call (set per call by the
// bindings). Thread-local, so concurrent calls with different counts do not interfere; Eigen's internal
// parallelism is compiled out (EIGEN_DONT_PARALLELIZE) for the same reason.
inline int& engine_threads() {
  thread_local int n = 1;
  return n;
}

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;
template <class T>
using MatMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using CMatMap = Eigen::Map<const RowMatrix<T>>;
// A block of rows of a larger row-major matrix (outer stride = full row length).
template <class T>
using CStridedMap = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using VecMap = Eigen::Map<Vector<T>>;
template <class T>
using CVecMap = Eigen::Map<const Vector<T>>;
template <class T>
using ArrMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using CArrMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

}  // namespace sensinet
