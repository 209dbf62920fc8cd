// The minibatch training loop on the device (as train.hpp): data and optimizer state resident by key, the
// CPU engine's shuffle, full steps replayed as CUDA graphs, the divergence revert and the last-step check.
#include "cuda_impl.cuh"

namespace sensinet::cuda {

// ====================================================================================== training loop

template <class T>
TrainOutcome CudaNetwork<T>::Impl::train(const T* xh, const T* yh, i64 n, const T* xvh, const T* yvh, i64 nv,
                                         const OptConfig& oc, T* sm, T* sv, i64 t0, const DeviceTrainConfig& tc,
                                         const PollFn& poll) {
  const i64 L = a.n_layers(), K = a.n_outputs(), P = a.n_params();
  const i64 first = tc.first, last = tc.last < 0 ? L - 1 : tc.last;
  const i64 in_layer = tc.input_layer < 0 ? first : tc.input_layer;
  if (in_layer > first) throw std::invalid_argument("input_layer: expected <= first");
  const i64 off = a.offsets[first], len = a.offsets[last + 1] - off;
  const i64 d = a.layers[first].n_in;
  const i64 bs = std::min(tc.batch_size, n);
  const bool adam = oc.kind == OptKind::Adam;
  TrainOutcome res;
  res.t = t0;

  // ---- data (resident when keyed: no upload on later calls) and the optimizer state
  const T* ysrc = data_in(y_tr, tc.y_key, yh, n * K, "the training targets");
  const T* xsrc = nullptr;
  if (in_layer == first) {
    xsrc = data_in(x_tr, tc.x_key, xh, n * d, "the training inputs");
  } else {
    // The block input: layers in_layer..first-1 evaluated once on the device.
    const i64 din = a.layers[in_layer].n_in;
    const T* x0 = data_in(x_ev, tc.x_key, xh, n * din, "the training inputs");
    x_tr.reserve(n * d, "the block input");
    const i64 step = eval_chunk(a, n);
    ev.reserve(a, step, 1, in_layer, n_l2());
    for (i64 s = 0; s < n; s += step) {
      const i64 m = std::min(step, n - s);
      forward(ev, theta.data(), x0 + s * din, m, in_layer, first - 1);
      copy_d2d(x_tr.data() + s * d, ev.output(a, first - 1), m * d);
    }
    xsrc = x_tr.data();
  }
  const bool has_val = xvh != nullptr && nv > 0;
  const T *xv = nullptr, *yv = nullptr;
  if (has_val) {
    xv = data_in(x_val, tc.xv_key, xvh, nv * a.n_inputs(), "the validation inputs");
    yv = data_in(y_val, tc.yv_key, yvh, nv * K, "the validation targets");
  }
  spare.reserve(P, "the second parameter buffer");
  grad_tr.reserve(P, "the gradient");
  copy_d2d(spare.data(), theta.data(), P);
  T *sm_d = nullptr, *sv_d = nullptr;
  if (tc.state_key > 0) {
    State* s = find_state(tc.state_key);
    const bool fresh = s == nullptr;
    if (fresh) {
      State x;
      x.m.reserve(P, "the optimizer state");
      x.v.reserve(P, "the optimizer state");
      x.key = tc.state_key;
      states.push_back(std::move(x));
      s = &states.back();
    }
    if (fresh || tc.state_upload) {
      upload(s->m.data(), sm, P, Xfer::State);
      upload(s->v.data(), sv, P, Xfer::State);
    }
    sm_d = s->m.data();
    sv_d = s->v.data();
  } else {
    st_m.reserve(P, "the optimizer state");
    st_v.reserve(P, "the optimizer state");
    upload(st_m.data(), sm, P, Xfer::State);
    upload(st_v.data(), sv, P, Xfer::State);
    sm_d = st_m.data();
    sv_d = st_v.data();
  }
  tr.reserve(a, bs, 1, first, n_l2());
  xb.reserve(bs * d, "the minibatch inputs");
  yb.reserve(bs * K, "the minibatch targets");
  const i64 per_epoch = (n + bs - 1) / bs;
  losses.reserve(per_epoch, "the step losses");
  ctl.reserve(1, "the step control");
  idx.reserve(n, "the permutation");
  scal.reserve(1, "the loss scalars");
  kern::init_control(st(), ctl.data(), t0);

  std::vector<std::ptrdiff_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), std::ptrdiff_t(0));
  static_assert(sizeof(std::ptrdiff_t) == sizeof(i64), "the permutation is uploaded as 64-bit indices");
  std::mt19937_64 rng(tc.seed);
  if (!tc.shuffle) upload_bytes(idx.data(), perm.data(), sizeof(i64) * n);

  kern::StepOpt so;
  so.counts_steps = adam || oc.momentum != 0.0;
  so.adam = adam;
  so.beta1 = oc.beta1;
  so.beta2 = oc.beta2;
  so.batch = bs;
  const T lr = T(oc.lr), mu = T(oc.momentum), b1 = T(oc.beta1), b2 = T(oc.beta2), eps = T(oc.eps);

  T* buf[2] = {theta.data(), spare.data()};
  // One minibatch step of m rows reading the weights in `cur` and writing them to `nxt` (train.hpp's
  // loop body). Everything that changes from step to step is read on the device, so the same launches
  // can be captured once and replayed.
  auto step_ops = [&](const T* cur, T* nxt, i64 m) {
    kern::gather_rows<T>(st(), xsrc, d, ysrc, K, idx.data(), ctl.data(), m, xb.data(), yb.data());
    forward(tr, cur, xb.data(), m, first, L - 1);
    const T inv = T(1) / T(m);
    kern::head_loss<T>(st(), static_cast<int>(a.loss), tr.output(a, L - 1), yb.data(), m, K, inv, tr.g.data(), tr.rowloss.data());
    backward(tr, cur, 1, first, first, last, grad_tr.data(), false, false, nullptr);
    l2_terms(tr, cur, grad_tr.data(), first, last);
    kern::finalize_loss<T>(st(), tr.rowloss.data(), m, kern::head_scale<T>(static_cast<int>(a.loss), K, inv), tr.reg.data(),
                           n_l2() * kern::kL2Blocks, nullptr, ctl.data(), losses.data(), so);
    if (adam)
      kern::adam_step<T>(st(), cur + off, grad_tr.data() + off, nxt + off, sm_d + off, sv_d + off, len,
                         lr, b1, b2, eps, ctl.data());
    else
      kern::sgd_step<T>(st(), cur + off, grad_tr.data() + off, nxt + off, sm_d + off, len, lr, mu,
                        oc.nesterov, ctl.data());
  };

  // CUDA graphs: one per parity of the double buffer, captured after the first (eager) full step.
  i64 full_steps = (n / bs) * tc.epochs;
  if (tc.max_steps >= 0) full_steps = std::min(full_steps, tc.max_steps);
  const bool use_graphs = tc.graphs && full_steps >= kMinGraphSteps;
  bool graphs_ready = false;
  auto capture = [&](int par) {
    cudaGraph_t g = nullptr;
    SENSINET_CUDA_CHECK(cudaStreamBeginCapture(st(), cudaStreamCaptureModeThreadLocal));
    try {
      step_ops(buf[par], buf[1 - par], bs);
    } catch (...) {
      cudaStreamEndCapture(st(), &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();
      throw;
    }
    SENSINET_CUDA_CHECK(cudaStreamEndCapture(st(), &g));
    graph[par].instantiate(g);
  };
  struct GraphReset {
    GraphExec* g;
    ~GraphReset() {
      g[0].reset();
      g[1].reset();
    }
  } graph_reset{graph};

  // ---- host bookkeeping (train.hpp's loop variables)
  int par = 0;        // cur = buf[par], nxt = buf[1 - par]
  i64 launched = 0;   // steps launched in this call
  i64 sync_step = 0;  // launched when par was last reset to 0 by a weight sync
  i64 epoch_start = 0, read_upto = 0, seen = 0, last_m = 0;
  long double sum = 0;
  bool stop = false, diverged = false;
  i64 div_at = -1;
  StepControl hc{};
  std::vector<double> h_losses(static_cast<std::size_t>(per_epoch));

  // Waits for the device, reads the step losses launched so far in this epoch and the divergence flag.
  auto read_status = [&]() {
    const i64 k = launched - epoch_start;
    download(&hc, ctl.data(), 1);
    if (k > read_upto) download(h_losses.data() + read_upto, losses.data() + read_upto, k - read_upto);
    stream.sync();
    const i64 lim = hc.diverged_at >= 0 ? std::min(k, hc.diverged_at - epoch_start) : k;
    for (i64 i = read_upto; i < lim; ++i) {
      const i64 m = std::min(bs, n - i * bs);
      const T l = static_cast<T>(h_losses[i]);
      sum += static_cast<long double>(l) * m;
      seen += m;
      res.last_loss = l;
    }
    read_upto = std::max(read_upto, lim);
    if (hc.diverged_at >= 0) {
      diverged = true;
      div_at = hc.diverged_at;
    }
  };
  // Makes `theta` hold the newest weights (the previous ones stay in the spare buffer for a revert).
  auto weight_sync = [&]() {
    if (par == 1) {
      kern::swap_ranges<T>(st(), theta.data() + off, spare.data() + off, len);
      par = 0;
    }
    sync_step = launched;
  };
  auto do_poll = [&](const Progress& p) {
    if (tc.poll_reads_weights && p.scheduled) weight_sync();
    stream.sync();
    return poll(p);
  };

  auto last_poll = std::chrono::steady_clock::now();
  for (i64 e = 0; e < tc.epochs && !stop; ++e) {
    if (tc.shuffle) {
      shuffle_like_cpu(perm, rng);
      upload_bytes(idx.data(), perm.data(), sizeof(i64) * n);
    }
    kern::begin_epoch(st(), ctl.data());
    epoch_start = launched;
    read_upto = 0;
    seen = 0;
    sum = 0;
    for (i64 s = 0; s < n && !stop; s += bs) {
      if (tc.max_steps >= 0 && launched >= tc.max_steps) {
        stop = true;
        break;
      }
      const i64 m = std::min(bs, n - s);
      if (use_graphs && graphs_ready && m == bs)
        graph[par].launch(st());
      else
        step_ops(buf[par], buf[1 - par], m);
      last_m = m;
      par ^= 1;
      ++launched;
      if (use_graphs && !graphs_ready && m == bs) {
        capture(0);
        capture(1);
        graphs_ready = true;
      }
      const auto now = std::chrono::steady_clock::now();
      const bool due = tc.poll_every > 0 && launched % tc.poll_every == 0;
      if (due || now - last_poll > std::chrono::milliseconds(100)) {
        last_poll = now;
        read_status();
        if (diverged) {
          stop = true;
          break;
        }
        Progress p;
        p.epoch = e;
        p.step = launched;
        p.loss = seen ? static_cast<double>(sum / seen) : 0.0;
        p.scheduled = due;
        if (do_poll(p)) {
          stop = true;
          res.status = TrainStatus::Stopped;
        }
      }
    }
    if (!diverged) read_status();
    if (diverged) break;
    if (seen == n) {
      res.epoch_loss.push_back(static_cast<double>(sum / seen));
      res.epochs_done = e + 1;
      Progress p;
      p.epoch = e;
      p.step = launched;
      p.loss = res.epoch_loss.back();
      p.epoch_end = true;
      if (has_val) {
        p.has_val = true;
        p.val_loss = objective(buf[par], xv, yv, nv, 0);
        res.val_loss.push_back(p.val_loss);
      }
      if (!stop && do_poll(p)) {
        stop = true;
        res.status = TrainStatus::Stopped;
      }
    }
  }
  res.graphs = graphs_ready;

  // ---- which buffer holds the result (train.hpp: divergence revert and the last-step check)
  int final_par = par;
  if (diverged) {
    res.status = TrainStatus::Diverged;
    const int par_j = static_cast<int>((div_at - sync_step) & 1);  // cur of the step whose loss was not finite
    final_par = div_at > 0 ? 1 - par_j : par_j;
    res.steps = div_at;
  } else {
    res.steps = launched;
    if (launched > 0) {
      // The last step's weights were never evaluated: a forward pass on the whole last minibatch tells
      // whether they diverged, as in train.hpp.
      const T* cur = buf[par];
      const i64 rows = last_m;
      forward(tr, cur, xb.data(), rows, first, L - 1);
      const T inv = T(1) / T(rows);
      kern::head_loss<T>(st(), static_cast<int>(a.loss), tr.output(a, L - 1), yb.data(), rows, K, inv, tr.g.data(),
                         tr.rowloss.data());
      l2_terms(tr, cur, nullptr, 0, -1);
      kern::finalize_loss<T>(st(), tr.rowloss.data(), rows, kern::head_scale<T>(static_cast<int>(a.loss), K, inv), tr.reg.data(),
                             n_l2() * kern::kL2Blocks, scal.data(), nullptr, nullptr, {});
      double h = 0;
      download(&h, scal.data(), 1);
      stream.sync();
      if (!std::isfinite(static_cast<T>(h))) {
        res.status = TrainStatus::Diverged;
        final_par = 1 - par;
      }
    }
  }
  if (final_par == 1) copy_d2d(theta.data() + off, spare.data() + off, len);
  if (tc.state_key <= 0) {
    download(sm, st_m.data(), P, Xfer::State);
    download(sv, st_v.data(), P, Xfer::State);
  }
  download(&hc, ctl.data(), 1);
  stream.sync();
  res.t = hc.t;
  return res;
}

template <class T>
TrainOutcome CudaNetwork<T>::train(const T* x, const T* y, i64 n, const T* x_val, const T* y_val, i64 n_val,
                                   const OptConfig& oc, T* state_m, T* state_v, i64 t, const DeviceTrainConfig& tc,
                                   const PollFn& poll) {
  DeviceGuard guard(impl_->device);
  return impl_->train(x, y, n, x_val, y_val, n_val, oc, state_m, state_v, t, tc, poll);
}

#define SENSINET_INSTANTIATE_TRAIN(T)                                                                         \
  template TrainOutcome CudaNetwork<T>::train(const T*, const T*, i64, const T*, const T*, i64, const OptConfig&, \
                                              T*, T*, i64, const DeviceTrainConfig&, const PollFn&);
SENSINET_INSTANTIATE_TRAIN(float)
SENSINET_INSTANTIATE_TRAIN(double)
#undef SENSINET_INSTANTIATE_TRAIN

}  // namespace sensinet::cuda
