// Minibatch training loop: epochs, seeded shuffling and optimizer steps in C++, with a progress poll
// (callback, early stopping, Ctrl-C) every `poll_every` steps, at each epoch end and at least every 0.1 s.
#pragma once
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "sensinet/network.hpp"
#include "sensinet/optim.hpp"

namespace sensinet {

// Unbiased draw in [0, n) from a 64-bit Mersenne Twister: its output sequence is fixed by the standard,
// unlike std::uniform_int_distribution's, so shuffles are identical across compilers.
inline uint64_t bounded_draw(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % n;
  }
}

inline void shuffle_indices(std::vector<Index>& idx, std::mt19937_64& rng) {
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[bounded_draw(rng, i)]);
}

struct TrainResult {
  TrainStatus status = TrainStatus::Completed;
  Index steps = 0, epochs_done = 0;
  std::vector<double> epoch_loss;
  double last_loss = 0;
};

// poll(progress) returns true to stop. It is also called with step progress when 0.1 s have passed, so an
// interrupt is seen promptly; weights stay consistent (a stop happens between steps).
// w: sample weights (nullptr: all 1); a minibatch's loss is then the weighted mean over its rows.
// keep: trainable mask over all parameters (nullptr: all trainable); frozen entries and their state stay put.
template <class T, class In, class Y>
TrainResult train(const Architecture& a, T* theta, const In& x, const Y& y, const OptConfig& oc, OptState<T>& st,
                  const TrainConfig& tc, const std::function<bool(const Progress&)>& poll, Workspace<T>& ws,
                  const T* w = nullptr, const T* keep = nullptr) {
  static_assert(In::InnerStrideAtCompileTime == 1 && Y::InnerStrideAtCompileTime == 1, "rows must be contiguous");
  const Index n = x.rows(), d = x.cols(), k = y.cols();
  const Index first = tc.first, last = tc.last < 0 ? a.n_layers() - 1 : tc.last;
  const Index off = a.offsets[first], len = a.offsets[last + 1] - off;
  const Index bs = std::min(tc.batch_size, n);
  // Double buffering: a step reads `cur` and writes `nxt`, so the previous weights survive a step that
  // produces a non-finite loss at no extra copy per step.
  // Both buffers persist in the workspace: a fresh 2 x n_params allocation per call costs page faults.
  ws.spare.resize(a.n_params());
  ws.grad.resize(a.n_params());
  std::memcpy(ws.spare.data(), theta, sizeof(T) * a.n_params());
  T* cur = theta;
  T* nxt = ws.spare.data();
  T* grad = ws.grad.data();
  std::vector<Index> idx(n);
  std::iota(idx.begin(), idx.end(), Index(0));
  std::mt19937_64 rng(tc.seed);
  RowMatrix<T> xb(tc.shuffle ? bs : 0, d), yb(tc.shuffle ? bs : 0, k);  // shuffled minibatches are gathered
  std::vector<T> wb(w && tc.shuffle ? bs : 0);
  const T* wp = nullptr;  // the current minibatch's weights
  // The current minibatch: rows [0, m) from xp / yp with row strides xstride / ystride.
  const T* xp = x.data();
  const T* yp = y.data();
  Index m = 0, xstride = x.outerStride(), ystride = y.outerStride();
  // The minibatch's weight: its rows without sample weights, else their sum (a batch of zero weight
  // contributes nothing: loss and gradient 0).
  auto batch_mass = [&]() { return wp ? std::accumulate(wp, wp + m, T(0)) : T(m); };
  auto scale_of = [](T mass) { return mass > T(0) ? T(1) / mass : T(0); };
  auto batch = [&](const T* p, Index cols, Index stride) {
    return CStridedMap<T>(p, m, cols, Eigen::OuterStride<>(stride));
  };
  TrainResult res;
  auto last_poll = std::chrono::steady_clock::now();
  bool stop = false;
  // A poll may run Python that reads the network: first make `theta` hold the newest weights (swapping
  // the block's contents keeps the previous ones in the spare buffer for a divergence revert).
  auto sync = [&]() {
    if (cur != theta) {
      std::swap_ranges(theta + off, theta + off + len, ws.spare.data() + off);
      cur = theta;
      nxt = ws.spare.data();
    }
  };
  auto do_poll = [&](const Progress& p) {
    if (tc.poll_reads_weights && p.scheduled) sync();
    return poll(p);
  };
  for (Index e = 0; e < tc.epochs && !stop; ++e) {
    if (tc.shuffle) shuffle_indices(idx, rng);
    long double sum = 0, mass = 0;  // loss x weight and weight of the epoch so far
    Index seen = 0;
    for (Index s = 0; s < n && !stop; s += bs) {
      if (tc.max_steps >= 0 && res.steps >= tc.max_steps) {
        stop = true;
        break;
      }
      m = std::min(bs, n - s);
      if (tc.shuffle) {
        for (Index i = 0; i < m; ++i) {
          std::memcpy(xb.data() + i * d, x.data() + idx[s + i] * x.outerStride(), sizeof(T) * d);
          std::memcpy(yb.data() + i * k, y.data() + idx[s + i] * y.outerStride(), sizeof(T) * k);
          if (w) wb[i] = w[idx[s + i]];
        }
        xp = xb.data(), yp = yb.data(), xstride = d, ystride = k;
        wp = w ? wb.data() : nullptr;
      } else {  // consecutive rows: read them in place
        xp = x.data() + s * x.outerStride(), yp = y.data() + s * y.outerStride();
        wp = w ? w + s : nullptr;
      }
      const T bmass = batch_mass();
      forward(a, cur, batch(xp, d, xstride), ws, first);
      T loss = loss_and_dout<T>(a.loss, ws.output(a.n_layers() - 1), batch(yp, k, ystride), ws.dout,
                                wp ? scale_of(bmass) : T(1) / T(m), wp);
      backward(a, cur, ws, ws.dout, first, first, last, grad, /*accumulate=*/false);
      loss += add_l2(a, cur, grad, first, last);
      if (!std::isfinite(loss)) {
        res.status = TrainStatus::Diverged;
        // cur gave a non-finite loss; nxt holds the weights of the previous step, whose loss was finite.
        if (res.steps > 0) cur = nxt;
        stop = true;
        break;
      }
      optimizer_step(oc, st, cur, grad + off, nxt, off, len, keep ? keep + off : nullptr);
      std::swap(cur, nxt);
      res.steps += 1;
      res.last_loss = loss;
      sum += static_cast<long double>(loss) * (wp ? static_cast<long double>(bmass) : static_cast<long double>(m));
      mass += wp ? static_cast<long double>(bmass) : static_cast<long double>(m);
      seen += m;
      const auto now = std::chrono::steady_clock::now();
      const bool due = tc.poll_every > 0 && res.steps % tc.poll_every == 0;
      if (due || now - last_poll > std::chrono::milliseconds(100)) {
        last_poll = now;
        Progress p{e, res.steps, static_cast<double>(mass > 0 ? sum / mass : 0.0L), false, due};
        if (do_poll(p)) {
          stop = true;
          res.status = TrainStatus::Stopped;
        }
      }
    }
    if (res.status == TrainStatus::Diverged) break;
    if (seen == n) {
      res.epoch_loss.push_back(static_cast<double>(mass > 0 ? sum / mass : 0.0L));
      res.epochs_done = e + 1;
      Progress p{e, res.steps, res.epoch_loss.back(), true, true};
      if (!stop && do_poll(p)) {
        stop = true;
        res.status = TrainStatus::Stopped;
      }
    }
  }
  // The last step's weights were never evaluated: a forward pass on the whole last minibatch tells whether
  // they diverged (then the previous weights, whose loss was finite, are kept). All of its rows: overflow
  // that only some samples reach (float32, large inputs) must not pass as "completed".
  if (res.status != TrainStatus::Diverged && res.steps > 0) {
    forward(a, cur, batch(xp, d, xstride), ws, first);
    const T loss = loss_and_dout<T>(a.loss, ws.output(a.n_layers() - 1), batch(yp, k, ystride), ws.dout,
                                    wp ? scale_of(batch_mass()) : T(1) / T(m), wp) +
                   add_l2(a, cur, static_cast<T*>(nullptr), first, last);
    if (!std::isfinite(loss)) {
      res.status = TrainStatus::Diverged;
      cur = nxt;
    }
  }
  if (cur != theta) std::memcpy(theta + off, cur + off, sizeof(T) * len);
  return res;
}

}  // namespace sensinet
