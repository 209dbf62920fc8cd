// Neuron sensitivities through scaling factors (Zhang et al. 2023): every neuron value v (a layer's
// activation, a residual block's inner activation or output, an input) is multiplied by a factor s = 1.
//   output sensitivity  S[n,k,j] = d yhat_k(x_n) / d s_j = (d yhat_k / d v_j) * v_j
//   loss sensitivity    per sample d l_n / d s_j; their mean is dJ/ds_j
// computed by one reverse sweep that stacks the K output seeds, stopping at the lowest requested layer,
// without parameter gradients. The curvature d2J/ds_G^2 of a group factor (one s shared by a set of
// neurons, possibly over several layers) is an exact Hessian-vector product (Pearlmutter's R-operator).
#pragma once
#include <vector>

#include "sensinet/network.hpp"

namespace sensinet {

// Width of a site (config.hpp: Site).
inline Index site_width(const Architecture& a, const Site& s) {
  if (s.layer < 0) return a.n_inputs();
  return s.part == 0 ? a.layers[s.layer].inner_width() : a.layers[s.layer].n_out;
}

inline void check_sites(const Architecture& a, const std::vector<Site>& sites) {
  for (const Site& s : sites) {
    const bool ok = (s.layer == -1 && s.part == 0) ||
                    (s.layer >= 0 && s.layer < a.n_layers() &&
                     (s.part == 0 || (s.part == 1 && a.layers[s.layer].kind != LayerKind::Dense)));
    if (!ok)
      throw std::invalid_argument("layers: no neurons at layer " + std::to_string(s.layer) + " part " +
                                  std::to_string(s.part));
  }
}

template <class T>
struct SensitivityHook : BackwardHook<T> {
  const std::vector<Site>& sites;
  Index K = 1, N = 0;
  Reduce reduce = Reduce::MeanAbs;
  std::vector<Eigen::MatrixXd>& acc;  // per site: K x width sums
  std::vector<T*> per_sample;         // per site: (N, K, width) values of the current chunk, or nullptr

  SensitivityHook(const std::vector<Site>& s, std::vector<Eigen::MatrixXd>& a) : sites(s), acc(a) {}

  void neurons(Index layer, int part, const RowMatrix<T>& g, const RowMatrix<T>& v) override {
    for (size_t i = 0; i < sites.size(); ++i)
      if (sites[i].layer == layer && sites[i].part == part) add(i, g, v);
  }

  template <class G, class V>
  void add(size_t i, const G& g, const V& v) {
    const Index w = v.cols();
    for (Index k = 0; k < K; ++k) {
      auto P = g.middleRows(k * N, N).array() * v.array();
      switch (reduce) {
        case Reduce::MeanAbs: acc[i].row(k) += P.abs().colwise().sum().template cast<double>().matrix(); break;
        case Reduce::RMS: acc[i].row(k) += P.square().colwise().sum().template cast<double>().matrix(); break;
        case Reduce::Mean: acc[i].row(k) += P.colwise().sum().template cast<double>().matrix(); break;
      }
      if (per_sample[i])
        for (Index n = 0; n < N; ++n)
          Eigen::Map<RowVector<T>>(per_sample[i] + (n * K + k) * w, w) = P.row(n);
    }
  }
};

// Reduced sensitivities of `sites` over the rows of x (sum over rows in acc; the caller divides by n, or
// takes sqrt(acc / n) for RMS). wrt_loss: K = 1 and y is required. per_sample[i], when not null, receives
// the (n, K, width) per-sample values.
template <class T, class In>
void sensitivities(const Architecture& a, const T* theta, const In& x, const CStridedMap<T>* y, bool wrt_loss,
                   const std::vector<Site>& sites, Reduce reduce, std::vector<Eigen::MatrixXd>& acc,
                   const std::vector<T*>& per_sample, Workspace<T>& ws) {
  check_sites(a, sites);
  const Index K = wrt_loss ? 1 : a.n_outputs();
  acc.assign(sites.size(), Eigen::MatrixXd());
  Index stop = a.n_layers() - 1;
  int input_site = -1;
  for (size_t i = 0; i < sites.size(); ++i) {
    acc[i] = Eigen::MatrixXd::Zero(K, site_width(a, sites[i]));
    stop = std::min(stop, std::max<Index>(sites[i].layer, 0));
    if (sites[i].layer < 0) input_site = int(i);
  }
  SensitivityHook<T> hook(sites, acc);
  hook.K = K;
  hook.reduce = reduce;
  const Index n = x.rows();
  const Index step = std::min(n, std::max<Index>(1, (Index(1) << 20) / (K * a.max_width())));
  RowMatrix<T> G, gin;
  for (Index s = 0; s < n; s += step) {
    const Index m = std::min(step, n - s);
    CStridedMap<T> xs(x.data() + s * x.outerStride(), m, x.cols(), Eigen::OuterStride<>(x.outerStride()));
    forward(a, theta, xs, ws, 0);
    if (wrt_loss) {
      CStridedMap<T> ys(y->data() + s * y->outerStride(), m, y->cols(), Eigen::OuterStride<>(y->outerStride()));
      loss_and_dout<T>(a.loss, ws.output(a.n_layers() - 1), ys, G, T(1));  // per-sample d l_n / d out
    } else {
      G.setZero(K * m, a.n_outputs());
      for (Index k = 0; k < K; ++k) G.block(k * m, k, m, 1).setOnes();
    }
    hook.N = m;
    hook.per_sample.assign(sites.size(), nullptr);
    for (size_t i = 0; i < sites.size(); ++i)
      if (!per_sample.empty() && per_sample[i]) hook.per_sample[i] = per_sample[i] + s * K * site_width(a, sites[i]);
    backward(a, theta, ws, G, stop, 0, -1, static_cast<T*>(nullptr), false, input_site >= 0 ? &gin : nullptr, &hook);
    if (input_site >= 0) hook.add(size_t(input_site), gin, xs);
  }
}

// Values v and adjoints dJ/dv of the neurons at `sites` (rows of x; J's mean uses 1/n_total so chunks of
// one data set add up). Used by layer insertion: the gradient of the loss with respect to the neutral
// parameters of a layer inserted at a site is an outer product of these.
template <class T>
struct AdjointHook : BackwardHook<T> {
  const std::vector<Site>& sites;
  std::vector<T*> values, adjoints;  // per site: (m, width) outputs of this chunk
  explicit AdjointHook(const std::vector<Site>& s) : sites(s) {}
  void neurons(Index layer, int part, const RowMatrix<T>& g, const RowMatrix<T>& v) override {
    for (size_t i = 0; i < sites.size(); ++i)
      if (sites[i].layer == layer && sites[i].part == part) store(i, g, v);
  }
  template <class G, class V>
  void store(size_t i, const G& g, const V& v) {
    MatMap<T>(values[i], v.rows(), v.cols()) = v;
    MatMap<T>(adjoints[i], g.rows(), g.cols()) = g;
  }
};

template <class T, class In>
void site_adjoints(const Architecture& a, const T* theta, const In& x, const CStridedMap<T>& y,
                   const std::vector<Site>& sites, T inv_n, const std::vector<T*>& values,
                   const std::vector<T*>& adjoints, Workspace<T>& ws) {
  check_sites(a, sites);
  Index stop = a.n_layers() - 1;
  int input_site = -1;
  for (size_t i = 0; i < sites.size(); ++i) {
    stop = std::min(stop, std::max<Index>(sites[i].layer, 0));
    if (sites[i].layer < 0) input_site = int(i);
  }
  AdjointHook<T> hook(sites);
  RowMatrix<T> G, gin;
  const Index n = x.rows(), step = chunk_rows(a, std::max<Index>(n, 1));
  for (Index s = 0; s < n; s += step) {
    const Index m = std::min(step, n - s);
    CStridedMap<T> xs(x.data() + s * x.outerStride(), m, x.cols(), Eigen::OuterStride<>(x.outerStride()));
    CStridedMap<T> ys(y.data() + s * y.outerStride(), m, y.cols(), Eigen::OuterStride<>(y.outerStride()));
    forward(a, theta, xs, ws, 0);
    loss_and_dout<T>(a.loss, ws.output(a.n_layers() - 1), ys, G, inv_n);
    hook.values.clear();
    hook.adjoints.clear();
    for (size_t i = 0; i < sites.size(); ++i) {
      const Index w = site_width(a, sites[i]);
      hook.values.push_back(values[i] + s * w);
      hook.adjoints.push_back(adjoints[i] + s * w);
    }
    backward(a, theta, ws, G, stop, 0, -1, static_cast<T*>(nullptr), false, input_site >= 0 ? &gin : nullptr, &hook);
    if (input_site >= 0) hook.store(size_t(input_site), gin, xs);
  }
}

// One group factor: weights u (usually 0/1 masks) over the neurons of some sites.
template <class T>
struct GroupSite {
  Site site;
  const T* u;
};

// d2J/ds^2 at s = 1 for each group (J = mean loss; the L2 terms do not depend on s).
template <class T, class In>
std::vector<double> group_curvature(const Architecture& a, const T* theta, const In& x, const CStridedMap<T>& y,
                                    const std::vector<std::vector<GroupSite<T>>>& groups, Workspace<T>& ws) {
  const Index L = a.n_layers(), n = x.rows();
  std::vector<double> result(groups.size(), 0.0);
  const Index step = chunk_rows(a, n);
  std::vector<RowMatrix<T>> Rz(L), Rh(L), Rout(L);
  RowMatrix<T> Rin, dout, g, Rg, gh, Rgh, tmp;
  for (Index s0 = 0; s0 < n; s0 += step) {
    const Index m = std::min(step, n - s0);
    CStridedMap<T> xs(x.data() + s0 * x.outerStride(), m, x.cols(), Eigen::OuterStride<>(x.outerStride()));
    CStridedMap<T> ys(y.data() + s0 * y.outerStride(), m, y.cols(), Eigen::OuterStride<>(y.outerStride()));
    forward(a, theta, xs, ws, 0);
    const RowMatrix<T>& out = ws.output(L - 1);
    loss_and_dout<T>(a.loss, out, ys, dout, T(1) / T(n));
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      std::vector<const T*> uh(L, nullptr), uo(L, nullptr);
      const T* ux = nullptr;
      Index lo = L - 1;
      for (const auto& gs : groups[gi]) {
        if (gs.site.layer < 0) ux = gs.u;
        else (gs.site.part == 0 ? uh : uo)[gs.site.layer] = gs.u;
        lo = std::min(lo, std::max<Index>(gs.site.layer, 0));
      }
      // An owning copy: an Eigen expression of a temporary Map must not outlive this lambda.
      auto urow = [](const T* u, Index w) -> Eigen::Array<T, 1, Eigen::Dynamic> {
        return CVecMap<T>(u, w).array().transpose();
      };
      // Tangent forward from layer lo: R{.} of every unscaled value, given the group direction.
      bool rin_zero = ux == nullptr;
      if (ux) Rin = xs.array().rowwise() * urow(ux, xs.cols());
      for (Index l = lo; l < L; ++l) {
        const LayerSpec& sp = a.layers[l];
        LayerView<T> p(sp, theta + a.offsets[l]);
        const RowMatrix<T>& z = ws.z[l];
        const RowMatrix<T>& h = ws.h[l];
        if (rin_zero) {
          Rz[l].setZero(m, sp.inner_width());
          Rh[l].setZero(m, sp.inner_width());
        } else {
          Rz[l].resize(m, sp.inner_width());
          gemm(Rz[l], Rin, p.W1, false);
          Rh[l] = Rz[l];
          multiply_derivative<T>(sp.act, T(sp.alpha), z.data(), h.data(), Rh[l].data(), Rh[l].size());
        }
        tmp = Rh[l];  // tangent of the scaled activation
        if (uh[l]) tmp.array() += h.array().rowwise() * urow(uh[l], h.cols());
        if (sp.kind == LayerKind::Dense) {
          Rin.swap(tmp);
        } else {
          if (rin_zero) Rout[l].setZero(m, sp.n_out);
          else Rout[l] = Rin;
          if (sp.kind == LayerKind::Residual2) gemm(Rout[l], tmp, p.W2, true);
          else Rout[l] += tmp;
          Rin = Rout[l];
          if (uo[l]) Rin.array() += ws.out[l].array().rowwise() * urow(uo[l], sp.n_out);
        }
        rin_zero = false;
      }
      // Rin is now the tangent of the output; R{dJ/dout} = Hessian of the head times it.
      Rg.resize(m, a.n_outputs());
      const T inv_n = T(1) / T(n);
      switch (a.loss) {
        case Loss::MSE: Rg = Rin * (T(2) * inv_n / T(a.n_outputs())); break;
        case Loss::CrossEntropy:
          for (Index i = 0; i < m; ++i) {
            RowVector<T> pr = (out.row(i).array() - out.row(i).maxCoeff()).exp();
            pr /= pr.sum();
            const T ysum = ys.row(i).sum();
            Rg.row(i) = ysum * inv_n * (pr.array() * Rin.row(i).array() - pr.array() * pr.dot(Rin.row(i))).matrix();
          }
          break;
        case Loss::BinaryCrossEntropy: {
          auto sg = T(1) / (T(1) + (-out.array()).exp());
          Rg = (sg * (T(1) - sg) * Rin.array() * inv_n).matrix();
          break;
        }
      }
      g = dout;
      long double c = 0;
      for (Index l = L - 1; l >= lo; --l) {
        const LayerSpec& sp = a.layers[l];
        LayerView<T> p(sp, theta + a.offsets[l]);
        const RowMatrix<T>& z = ws.z[l];
        const RowMatrix<T>& h = ws.h[l];
        const bool propagate = l > lo || ux;
        if (sp.kind != LayerKind::Dense) {
          if (uo[l]) {
            auto u = urow(uo[l], sp.n_out);
            c += ((Rg.array() * ws.out[l].array() + g.array() * Rout[l].array()).rowwise() * u).sum();
            Rg.array() += g.array().rowwise() * u;
          }
          if (sp.kind == LayerKind::Residual2) {
            gh.resize(m, sp.n_hidden);
            Rgh.resize(m, sp.n_hidden);
            gemm(gh, g, p.W2.transpose(), false);
            gemm(Rgh, Rg, p.W2.transpose(), false);
          } else {
            gh = g;
            Rgh = Rg;
          }
        } else {
          gh.swap(g);
          Rgh.swap(Rg);
        }
        if (uh[l]) {
          auto u = urow(uh[l], h.cols());
          c += ((Rgh.array() * h.array() + gh.array() * Rh[l].array()).rowwise() * u).sum();
          Rgh.array() += gh.array().rowwise() * u;
        }
        if (!propagate) break;
        // R{gz} = R{gh} act'(z) + gh act''(z) R{z};  gz = gh act'(z)
        tmp = gh.array() * Rz[l].array();
        second_derivative<T>(sp.act, T(sp.alpha), z.data(), h.data(), tmp.data(), tmp.data(), tmp.size());
        multiply_derivative<T>(sp.act, T(sp.alpha), z.data(), h.data(), Rgh.data(), Rgh.size());
        Rgh += tmp;
        multiply_derivative<T>(sp.act, T(sp.alpha), z.data(), h.data(), gh.data(), gh.size());
        const bool dense = sp.kind == LayerKind::Dense;  // a residual block adds to its skip path's g
        if (dense) {
          g.resize(m, sp.n_in);
          Rg.resize(m, sp.n_in);
        }
        gemm(g, gh, p.W1.transpose(), !dense);
        gemm(Rg, Rgh, p.W1.transpose(), !dense);
      }
      if (ux) c += ((Rg.array() * xs.array()).rowwise() * urow(ux, xs.cols())).sum();
      result[gi] += static_cast<double>(c);
    }
  }
  return result;
}

}  // namespace sensinet
