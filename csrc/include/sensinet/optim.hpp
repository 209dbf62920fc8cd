// First-order optimizers acting on a slice [off, off+len) of the flat parameter vector. The state arrays
// are full length and owned by the caller, so a state survives across calls and blocks.
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>

#include "sensinet/config.hpp"
#include "sensinet/types.hpp"

namespace sensinet {

// m: momentum buffer (SGD) or first moment (Adam); v: second moment (Adam); t: Adam step count.
template <class T>
struct OptState {
  T* m = nullptr;
  T* v = nullptr;
  long long t = 0;
};

// nxt[off..] = cur[off..] - update(g). Conventions follow PyTorch: SGD buf = mu*buf + g, step = g + mu*buf
// (Nesterov) or buf; Adam with bias corrections as torch.optim.Adam (eps added after the corrected sqrt).
// keep (optional, length len): entries where it is 0 are frozen: their parameter and their optimizer state
// are left as they are (a masked gradient alone would still move them through Adam's or momentum's memory).
template <class T>
void optimizer_step(const OptConfig& c, OptState<T>& st, const T* cur, const T* g, T* nxt, Index off, Index len,
                    const T* keep = nullptr) {
  CArrMap<T> P(cur + off, len), G(g, len);
  ArrMap<T> N(nxt + off, len);
  const T lr = T(c.lr);
  // assign(dst, value): dst = value where trainable, unchanged where frozen (the mask costs nothing when absent)
  auto assign = [&](auto&& dst, const auto& value, const auto& old) {
    if (keep)
      dst = (CArrMap<T>(keep, len) != T(0)).select(value, old);
    else
      dst = value;
  };
  if (c.kind == OptKind::SGD) {
    if (c.momentum == 0.0) {
      assign(N, P - lr * G, P);
      return;
    }
    ArrMap<T> B(st.m + off, len);
    const T mu = T(c.momentum);
    // torch initialises the buffer with the first gradient; t == 0 marks "no buffer yet".
    if (st.t == 0)
      assign(B, G, B);
    else
      assign(B, mu * B + G, B);
    if (c.nesterov)
      assign(N, P - lr * (G + mu * B), P);
    else
      assign(N, P - lr * B, P);
    st.t += 1;
    return;
  }
  ArrMap<T> M(st.m + off, len), V(st.v + off, len);
  st.t += 1;
  const T b1 = T(c.beta1), b2 = T(c.beta2);
  assign(M, b1 * M + (T(1) - b1) * G, M);
  assign(V, b2 * V + (T(1) - b2) * G * G, V);
  const T bc1 = T(1) - std::pow(b1, T(st.t));
  const T bc2s = std::sqrt(T(1) - std::pow(b2, T(st.t)));
  assign(N, P - (lr / bc1) * M / (V.sqrt() / bc2s + T(c.eps)), P);
}

}  // namespace sensinet
