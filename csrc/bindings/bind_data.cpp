// Data helpers: the fingerprint that lets prepared data sets and device mirrors detect in-place changes.
#include "common.hpp"
#include "sensinet/fingerprint.hpp"

namespace sensinet::bind {

void bind_data(py::module_& m) {
  m.def(
      "fingerprint",
      [](const py::array& a, std::uint64_t key) {
        if (!(a.flags() & py::array::c_style))
          throw py::value_error("array: expected a C-contiguous array for a fingerprint");
        const void* p = a.data();
        const std::size_t bytes = static_cast<std::size_t>(a.nbytes());
        NoGil nogil;
        return fingerprint(p, bytes, key);
      },
      py::arg("array"), py::arg("key"),
      "64-bit position-sensitive fingerprint of a C-contiguous array's bytes, keyed by a secret 64-bit key.");
}

}  // namespace sensinet::bind
