// Neuron sensitivities (reverse sweep with stacked output seeds), scaled forward passes for the
// finite-difference method, and exact group-factor curvatures.
#include "common.hpp"
#include "sensinet/sensitivity.hpp"

namespace sensinet::bind {

static std::vector<Site> parse_sites(const Architecture& a, const std::vector<std::pair<Index, int>>& raw) {
  std::vector<Site> sites;
  for (const auto& [layer, part] : raw) sites.push_back(Site{layer, part});
  try {
    check_sites(a, sites);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  return sites;
}

// Scaling vectors (layer, part, s) for a forward pass; kept alive by the py::array list.
template <class T>
struct ScaleTable {
  std::vector<py::array> keep;
  std::vector<std::array<const T*, 2>> table;
  ScaleTable(const Architecture& a, const std::vector<std::tuple<Index, int, py::array>>& scales) {
    table.assign(a.n_layers(), {nullptr, nullptr});
    for (const auto& [layer, part, arr] : scales) {
      if (layer < 0 || layer >= a.n_layers() || part < 0 || part > 1 ||
          (part == 1 && a.layers[layer].kind == LayerKind::Dense))
        throw py::value_error("scales: no neurons at layer " + std::to_string(layer) + " part " + std::to_string(part));
      py::array v = arr;
      const Index w = site_width(a, Site{layer, part});
      table[layer][part] = vector_arg<T>(v, "scales", w);
      keep.push_back(v);
    }
  }
};

template <class T>
void bind_sensitivity_for(py::module_& mod) {
  mod.def(
      "sensitivities",
      [](Model<T>& m, const py::array& x, const py::object& y, bool wrt_loss,
         const std::vector<std::pair<Index, int>>& raw_sites, int reduce, bool per_sample, int n_threads) {
        auto X = matrix_arg<T>(x, "X", m.arch.n_inputs());
        std::optional<CStridedMap<T>> Y;
        if (wrt_loss) {
          if (y.is_none()) throw py::value_error("y: required for wrt='loss'");
          Y.emplace(matrix_arg<T>(py::array(y), "Y", m.arch.n_outputs(), X.rows()));
        }
        if (reduce < 0 || reduce > 2) throw py::value_error("reduce: expected 0 (mean_abs), 1 (rms) or 2 (mean)");
        auto sites = parse_sites(m.arch, raw_sites);
        const Index K = wrt_loss ? 1 : m.arch.n_outputs();
        std::vector<py::array_t<T>> samples;
        std::vector<T*> ptrs;
        if (per_sample)
          for (const Site& s : sites) {
            samples.emplace_back(std::vector<py::ssize_t>{X.rows(), K, site_width(m.arch, s)});
            ptrs.push_back(samples.back().mutable_data());
          }
        std::vector<Eigen::MatrixXd> acc;
        {
          NoGil nogil;
          std::lock_guard<std::mutex> lock(m.mu);
          ThreadScope threads(n_threads);
          sensitivities(m.arch, m.theta.data(), X, Y ? &*Y : nullptr, wrt_loss, sites, Reduce(reduce), acc, ptrs,
                        m.ws);
        }
        py::list mats;
        for (auto& a : acc) {
          a /= double(X.rows());
          if (reduce == int(Reduce::RMS)) a = a.cwiseSqrt();
          py::array_t<double> out({a.rows(), a.cols()});
          Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(out.mutable_data(),
                                                                                            a.rows(), a.cols()) = a;
          mats.append(out);
        }
        py::list ps;
        for (auto& s : samples) ps.append(s);
        return py::make_tuple(mats, ps);
      },
      py::arg("model"), py::arg("X"), py::arg("Y"), py::arg("wrt_loss"), py::arg("sites"), py::arg("reduce") = 0,
      py::arg("per_sample") = false, py::arg("n_threads") = 0);

  mod.def(
      "site_adjoints",
      [](Model<T>& m, const py::array& x, const py::array& y, const std::vector<std::pair<Index, int>>& raw_sites,
         double inv_n, int n_threads) {
        auto X = matrix_arg<T>(x, "X", m.arch.n_inputs());
        auto Y = matrix_arg<T>(y, "Y", m.arch.n_outputs(), X.rows());
        auto sites = parse_sites(m.arch, raw_sites);
        if (!(inv_n > 0)) throw py::value_error("inv_n: expected > 0");
        std::vector<py::array_t<T>> vals, adjs;
        std::vector<T*> vp, ap;
        for (const Site& s : sites) {
          vals.emplace_back(std::vector<py::ssize_t>{X.rows(), site_width(m.arch, s)});
          adjs.emplace_back(std::vector<py::ssize_t>{X.rows(), site_width(m.arch, s)});
          vp.push_back(vals.back().mutable_data());
          ap.push_back(adjs.back().mutable_data());
        }
        {
          NoGil nogil;
          std::lock_guard<std::mutex> lock(m.mu);
          ThreadScope threads(n_threads);
          site_adjoints(m.arch, m.theta.data(), X, Y, sites, T(inv_n), vp, ap, m.ws);
        }
        py::list v, g;
        for (auto& a : vals) v.append(a);
        for (auto& a : adjs) g.append(a);
        return py::make_tuple(v, g);
      },
      py::arg("model"), py::arg("X"), py::arg("Y"), py::arg("sites"), py::arg("inv_n"), py::arg("n_threads") = 0,
      "Values v and adjoints dJ/dv (J = loss mean with 1/N = inv_n) of the neurons at `sites`.");

  mod.def(
      "group_curvature",
      [](Model<T>& m, const py::array& x, const py::array& y,
         const std::vector<std::vector<std::tuple<Index, int, py::array>>>& groups, int n_threads) {
        auto X = matrix_arg<T>(x, "X", m.arch.n_inputs());
        auto Y = matrix_arg<T>(y, "Y", m.arch.n_outputs(), X.rows());
        std::vector<py::array> keep;
        std::vector<std::vector<GroupSite<T>>> gs;
        for (const auto& group : groups) {
          if (group.empty()) throw py::value_error("groups: a group needs at least one site");
          std::vector<GroupSite<T>> g;
          for (const auto& [layer, part, arr] : group) {
            Site s{layer, part};
            parse_sites(m.arch, {{layer, part}});
            py::array v = arr;
            g.push_back(GroupSite<T>{s, vector_arg<T>(v, "groups", site_width(m.arch, s))});
            keep.push_back(v);
          }
          gs.push_back(std::move(g));
        }
        std::vector<double> r;
        {
          NoGil nogil;
          std::lock_guard<std::mutex> lock(m.mu);
          ThreadScope threads(n_threads);
          r = group_curvature(m.arch, m.theta.data(), X, Y, gs, m.ws);
        }
        return r;
      },
      py::arg("model"), py::arg("X"), py::arg("Y"), py::arg("groups"), py::arg("n_threads") = 0);

  mod.def(
      "scaled_forward",
      [](Model<T>& m, const py::array& x, const py::object& y, const std::vector<std::tuple<Index, int, py::array>>& scales,
         int n_threads) -> py::object {
        auto X = matrix_arg<T>(x, "X", m.arch.n_inputs());
        ScaleTable<T> st(m.arch, scales);
        std::optional<CStridedMap<T>> Y;
        if (!y.is_none()) Y.emplace(matrix_arg<T>(py::array(y), "Y", m.arch.n_outputs(), X.rows()));
        py::array_t<T> out({X.rows(), m.arch.n_outputs()});
        T loss = 0;
        {
          NoGil nogil;
          std::lock_guard<std::mutex> lock(m.mu);
          ThreadScope threads(n_threads);
          m.ws.scale = st.table;
          if (Y) loss = loss_and_grad(m.arch, m.theta.data(), X, *Y, 0, m.arch.n_layers() - 1, (T*)nullptr, m.ws);
          else predict(m.arch, m.theta.data(), X, MatMap<T>(out.mutable_data(), X.rows(), m.arch.n_outputs()), m.ws);
          m.ws.scale.clear();
        }
        if (Y) return py::float_(loss);
        return out;
      },
      py::arg("model"), py::arg("X"), py::arg("Y"), py::arg("scales"), py::arg("n_threads") = 0,
      "Network output (Y None) or objective J (Y given) with neuron scaling factors applied.");
}

void bind_sensitivity(py::module_& m) {
  bind_sensitivity_for<double>(m);
  bind_sensitivity_for<float>(m);
}

}  // namespace sensinet::bind
