// The stacked-seed sensitivity sweep on the device (as sensitivity.hpp): reduced g * v per site.
#include "cuda_impl.cuh"

namespace sensinet::cuda {

template <class T>
void CudaNetwork<T>::sensitivities(const T* x, const T* y, i64 n, bool wrt_loss, const std::vector<Site>& sites,
                                   int reduce, std::vector<std::vector<double>>& acc, i64 x_key, i64 y_key) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  const Architecture& a = I.a;
  const i64 L = a.n_layers(), KO = a.n_outputs(), d = a.n_inputs();
  const i64 K = wrt_loss ? 1 : KO;
  std::vector<i64> widths, offs;
  i64 stop = L - 1, total = 0;
  int input_site = -1;
  for (std::size_t i = 0; i < sites.size(); ++i) {
    const Site& s = sites[i];
    const i64 w = s.layer < 0 ? d : (s.part == 0 ? a.layers[s.layer].inner_width() : a.layers[s.layer].n_out);
    widths.push_back(w);
    offs.push_back(total);
    total += K * w;
    stop = std::min(stop, std::max<i64>(s.layer, 0));
    if (s.layer < 0) input_site = static_cast<int>(i);
  }
  const T* xd = I.data_in(I.x_ev, x_key, x, n * d, "the input X");
  const T* yd = wrt_loss ? I.data_in(I.y_ev, y_key, y, n * KO, "the targets Y") : nullptr;
  I.sens_acc.reserve(std::max<i64>(total, 1), "the sensitivity sums");
  SENSINET_CUDA_CHECK(cudaMemsetAsync(I.sens_acc.data(), 0, sizeof(double) * std::max<i64>(total, 1), I.st()));
  SensHook hook;
  hook.sites = &sites;
  hook.K = K;
  hook.reduce = reduce;
  for (std::size_t i = 0; i < sites.size(); ++i) hook.acc.push_back(I.sens_acc.data() + offs[i]);
  // Rows per chunk: the stacked reverse-pass buffers (K * rows * width) near 2^24 values.
  const i64 step = std::max<i64>(1, std::min(n, (i64(1) << 24) / (K * a.max_width())));
  I.ev.reserve(a, step, K, 0, I.n_l2());
  for (i64 s = 0; s < n; s += step) {
    const i64 m = std::min(step, n - s);
    const T* xs = xd + s * d;
    I.forward(I.ev, I.theta.data(), xs, m, 0, L - 1);
    if (wrt_loss)
      kern::head_loss<T>(I.st(), static_cast<int>(a.loss), I.ev.output(a, L - 1), yd + s * KO, m, KO, T(1), I.ev.g.data(),
                         I.ev.rowloss.data());
    else
      kern::seed_outputs<T>(I.st(), I.ev.g.data(), m, K);
    I.backward(I.ev, I.theta.data(), K, stop, 0, -1, nullptr, false, input_site >= 0, &hook);
    if (input_site >= 0)
      kern::sensitivity_reduce<T>(I.st(), I.ev.g.data(), xs, m, d, K, reduce, hook.acc[input_site],
                                  I.ev.partial.data());
  }
  std::vector<double> h(static_cast<std::size_t>(std::max<i64>(total, 1)));
  I.download(h.data(), I.sens_acc.data(), std::max<i64>(total, 1));
  I.stream.sync();
  acc.assign(sites.size(), {});
  for (std::size_t i = 0; i < sites.size(); ++i)
    acc[i].assign(h.begin() + offs[i], h.begin() + offs[i] + K * widths[i]);
}

template void CudaNetwork<float>::sensitivities(const float*, const float*, i64, bool, const std::vector<Site>&, int,
                                                std::vector<std::vector<double>>&, i64, i64);
template void CudaNetwork<double>::sensitivities(const double*, const double*, i64, bool, const std::vector<Site>&,
                                                 int, std::vector<std::vector<double>>&, i64, i64);

}  // namespace sensinet::cuda
