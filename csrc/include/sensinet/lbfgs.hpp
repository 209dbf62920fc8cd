// Full-batch L-BFGS (two-loop recursion) with a strong-Wolfe line search (Nocedal & Wright, Alg. 3.5/3.6,
// cubic interpolation with bisection as the safeguard), on the parameters of a block of layers.
#pragma once
#include <cmath>
#include <deque>
#include <functional>
#include <vector>

#include "sensinet/train.hpp"

namespace sensinet {

struct LbfgsConfig {
  Index max_iter = 100;
  Index history = 10;
  double gtol = 1e-6;   // stop when max |grad| <= gtol
  double ftol = 1e-12;  // stop when the relative decrease of J in one iteration <= ftol
  Index first = 0, last = -1;
  Index max_evals = -1;  // -1: 20 * max_iter
};

enum class LbfgsStatus { GradientTolerance = 0, FunctionTolerance = 1, MaxIterations = 2, Stopped = 3,
                         LineSearchFailed = 4, Diverged = 5 };

struct LbfgsResult {
  LbfgsStatus status = LbfgsStatus::MaxIterations;
  Index iterations = 0, evaluations = 0;
  double loss = 0;
  std::vector<double> loss_history;
};

template <class T, class In, class Y>
LbfgsResult lbfgs(const Architecture& a, T* theta, const In& x, const Y& y, const LbfgsConfig& c,
                  const std::function<bool(const Progress&)>& poll, Workspace<T>& ws, const T* w = nullptr,
                  const T* keep = nullptr) {
  const Index first = c.first, last = c.last < 0 ? a.n_layers() - 1 : c.last;
  const Index off = a.offsets[first], n = a.offsets[last + 1] - off;
  const Index max_evals = c.max_evals < 0 ? 20 * c.max_iter : c.max_evals;
  using V = Vector<T>;
  std::vector<T> trial(theta, theta + a.n_params());
  VecMap<T> xk(theta + off, n), xt(trial.data() + off, n);
  V g(n), gt(n), d(n), q(n);
  LbfgsResult res;
  auto eval = [&](T* th, V& grad) {
    res.evaluations += 1;
    const T f = loss_and_grad(a, th, x, y, first, last, grad.data(), ws, w);
    // frozen entries: a zero gradient keeps every direction, step and curvature pair in the trainable subspace
    if (keep) grad.array() *= CArrMap<T>(keep + off, n);
    return f;
  };
  T f = eval(theta, g);
  res.loss = f;
  res.loss_history.push_back(f);
  if (!std::isfinite(f)) {
    res.status = LbfgsStatus::Diverged;
    return res;
  }
  std::deque<V> S, Yd;
  std::deque<T> rho;
  const T c1 = T(1e-4), c2 = T(0.9);
  for (Index it = 0; it < c.max_iter; ++it) {
    if (g.template lpNorm<Eigen::Infinity>() <= T(c.gtol)) {
      res.status = LbfgsStatus::GradientTolerance;
      return res;
    }
    // Two-loop recursion: d = -H g.
    q = g;
    std::vector<T> al(S.size());
    for (Index i = Index(S.size()) - 1; i >= 0; --i) {
      al[i] = rho[i] * S[i].dot(q);
      q -= al[i] * Yd[i];
    }
    T gamma = S.empty() ? T(1) : S.back().dot(Yd.back()) / Yd.back().squaredNorm();
    q *= gamma;
    for (size_t i = 0; i < S.size(); ++i) {
      const T b = rho[i] * Yd[i].dot(q);
      q += (al[i] - b) * S[i];
    }
    d = -q;
    T d0 = g.dot(d);
    if (!(d0 < 0)) {  // not a descent direction: restart from steepest descent
      S.clear(); Yd.clear(); rho.clear();
      d = -g;
      d0 = -g.squaredNorm();
    }
    // Line search on phi(alpha) = J(x + alpha d).
    T flast = f;  // value at the last evaluated point; the accepted point is always the last evaluated
    auto phi = [&](T alpha, T& dphi) {
      xt = xk + alpha * d;
      flast = eval(trial.data(), gt);
      dphi = gt.dot(d);
      return flast;
    };
    // First iteration: a unit-length step; afterwards the quasi-Newton step alpha = 1.
    const T a_init = S.empty() ? std::min(T(1), T(1) / std::sqrt(std::max(T(1e-300), g.squaredNorm()))) : T(1);
    T alo = 0, flo = f, dlo = d0, ahi = 0, fhi = 0, dhi = 0;
    T acc = -1;
    bool zoom = false;
    T aprev = 0, fprev = f, dprev = d0, acur = a_init;
    for (int i = 0; i < 25 && res.evaluations < max_evals; ++i) {
      T da;
      const T fa = phi(acur, da);
      if (!std::isfinite(fa) || fa > f + c1 * acur * d0 || (i > 0 && fa >= fprev)) {
        alo = aprev; flo = fprev; dlo = dprev; ahi = acur; fhi = fa; dhi = da; zoom = true;
        break;
      }
      if (std::abs(da) <= -c2 * d0) { acc = acur; break; }
      if (da >= 0) {
        alo = acur; flo = fa; dlo = da; ahi = aprev; fhi = fprev; dhi = dprev; zoom = true;
        break;
      }
      aprev = acur; fprev = fa; dprev = da;
      acur = T(2) * acur;
    }
    if (zoom) {
      for (int i = 0; i < 30 && res.evaluations < max_evals; ++i) {
        const T lo = std::min(alo, ahi), hi = std::max(alo, ahi), w = hi - lo;
        T at = T(0.5) * (alo + ahi);
        if (std::isfinite(fhi)) {  // minimiser of the cubic through (alo, flo, dlo) and (ahi, fhi, dhi)
          const T d1 = dlo + dhi - T(3) * (flo - fhi) / (alo - ahi);
          const T disc = d1 * d1 - dlo * dhi;
          if (disc >= 0) {
            const T d2 = std::copysign(std::sqrt(disc), ahi - alo);
            const T cand = ahi - (ahi - alo) * (dhi + d2 - d1) / (dhi - dlo + T(2) * d2);
            if (std::isfinite(cand) && cand > lo + T(0.1) * w && cand < hi - T(0.1) * w) at = cand;
          }
        }
        T da;
        const T fa = phi(at, da);
        if (!std::isfinite(fa) || fa > f + c1 * at * d0 || fa >= flo) {
          ahi = at; fhi = fa; dhi = da;
        } else {
          if (std::abs(da) <= -c2 * d0) { acc = at; break; }
          if (da * (ahi - alo) >= 0) { ahi = alo; fhi = flo; dhi = dlo; }
          alo = at; flo = fa; dlo = da;
        }
        if (w < T(1e-14) * std::max(T(1), hi)) break;
      }
      if (acc < 0 && alo > 0 && flo < f) {  // no Wolfe point found, but alo decreased J: take it
        T da;
        phi(alo, da);
        acc = alo;
      }
    }
    if (acc <= 0) {
      res.status = LbfgsStatus::LineSearchFailed;
      return res;
    }
    // trial / gt / flast hold the accepted point.
    V s = xt - xk, yv = gt - g;
    const T sy = s.dot(yv);
    const T fold = f;
    xk = xt;
    g = gt;
    f = flast;
    res.iterations = it + 1;
    res.loss = f;
    res.loss_history.push_back(f);
    if (sy > T(1e-10) * yv.squaredNorm()) {
      if (Index(S.size()) == c.history) { S.pop_front(); Yd.pop_front(); rho.pop_front(); }
      S.push_back(std::move(s)); Yd.push_back(std::move(yv)); rho.push_back(T(1) / sy);
    }
    if (poll(Progress{it, res.evaluations, double(f), true, true})) {
      res.status = LbfgsStatus::Stopped;
      return res;
    }
    if ((fold - f) <= T(c.ftol) * std::max({std::abs(fold), std::abs(f), T(1)})) {
      res.status = LbfgsStatus::FunctionTolerance;
      return res;
    }
    if (res.evaluations >= max_evals) break;
  }
  res.status = LbfgsStatus::MaxIterations;
  return res;
}

}  // namespace sensinet
