// sensinet._core: one binding file per concept, assembled here.
#include "common.hpp"

namespace sensinet::bind {
void bind_network(py::module_& m);
void bind_train(py::module_& m);
void bind_sensitivity(py::module_& m);
void bind_patterns(py::module_& m);
void bind_data(py::module_& m);

template <class T>
py::array_t<T> activation_values(const std::string& name, const py::array_t<T, py::array::c_style>& z, double alpha,
                                 bool derivative) {
  const Activation a = parse_activation(name);
  py::array_t<T> out(z.request().shape);
  const Index n = z.size();
  if (!derivative) {
    activate<T>(a, T(alpha), z.data(), out.mutable_data(), n);
  } else {
    std::vector<T> h(n);
    activate<T>(a, T(alpha), z.data(), h.data(), n);
    std::fill(out.mutable_data(), out.mutable_data() + n, T(1));
    multiply_derivative<T>(a, T(alpha), z.data(), h.data(), out.mutable_data(), n);
  }
  return out;
}
}  // namespace sensinet::bind

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  using namespace sensinet::bind;
  m.doc() = "sensinet C++/Eigen engine (private; use the sensinet package)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  bind_network(m);
  bind_train(m);
  bind_sensitivity(m);
  bind_patterns(m);
  bind_data(m);
  m.def("begin_shutdown", &begin_shutdown, py::arg("timeout") = 2.0,
        "At interpreter exit: park threads inside the engine instead of letting CPython end them (see common.hpp).");
#ifdef _OPENMP
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  m.attr("eigen_version") = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                            std::to_string(EIGEN_MINOR_VERSION);
  // Eigen 3.4's own string omits AVX2 and FMA; list what this build actually vectorizes with.
  std::string simd;
#if defined(EIGEN_VECTORIZE_AVX512)
  simd += "AVX512 ";
#endif
#if defined(EIGEN_VECTORIZE_AVX2)
  simd += "AVX2 ";
#endif
#if defined(EIGEN_VECTORIZE_FMA)
  simd += "FMA ";
#endif
#if defined(EIGEN_VECTORIZE_AVX)
  simd += "AVX ";
#endif
#if defined(EIGEN_VECTORIZE_SSE4_2)
  simd += "SSE4.2 ";
#endif
  if (!simd.empty()) simd.pop_back();
  m.attr("simd") = simd.empty() ? std::string("none") : simd;
  m.def("activation", &activation_values<double>, py::arg("name"), py::arg("z"), py::arg("alpha") = 0.01,
        py::arg("derivative") = false);
  m.def("activation", &activation_values<float>, py::arg("name"), py::arg("z"), py::arg("alpha") = 0.01,
        py::arg("derivative") = false);
}
