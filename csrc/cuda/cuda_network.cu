// The CUDA engine (see cuda_network.hpp): construction, parameters, evaluation (forward, layer inputs, loss
// and gradient mirroring network.hpp), data and optimizer-state residency, and memory information. The
// training loop is in cuda_train.cu, the sensitivity sweep in cuda_sensitivity.cu, device memory and
// errors in device.cu.
#include "cuda_impl.cuh"

namespace sensinet::cuda {

// ====================================================================================== public methods

namespace {
// Restores the current device in destructors without throwing.
struct QuietDeviceGuard {
  int prev = -1;
  explicit QuietDeviceGuard(int device) {
    if (cudaGetDevice(&prev) != cudaSuccess) prev = -1;
    cudaSetDevice(device);
  }
  ~QuietDeviceGuard() {
    if (prev >= 0) cudaSetDevice(prev);
    cudaGetLastError();
  }
};
}  // namespace

template <class T>
CudaNetwork<T>::CudaNetwork(Architecture desc, int device) {
  if (desc.layers.empty()) throw std::invalid_argument("layers: expected at least one layer, got 0");
  std::string err;
  const int count = device_count(&err);
  if (device < 0 || device >= count)
    throw CudaError("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                    " device(s)" + (err.empty() ? std::string() : ": " + err) + ")");
  DeviceGuard guard(device);
  impl_ = std::make_unique<Impl>(std::move(desc), device);
}

template <class T>
CudaNetwork<T>::~CudaNetwork() {
  if (!impl_) return;
  QuietDeviceGuard guard(impl_->device);
  cudaStreamSynchronize(impl_->st());
  impl_.reset();
}

template <class T>
const Architecture& CudaNetwork<T>::arch() const {
  return impl_->a;
}

template <class T>
int CudaNetwork<T>::device() const {
  return impl_->device;
}

template <class T>
void CudaNetwork<T>::set_tf32(bool on) {
  DeviceGuard guard(impl_->device);
  SENSINET_CUBLAS_CHECK(cublasSetMathMode(impl_->blas.get(), on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  impl_->tf32 = on;
}

template <class T>
bool CudaNetwork<T>::tf32() const {
  return impl_->tf32;
}

template <class T>
void CudaNetwork<T>::set_parameters(const T* host) {
  DeviceGuard guard(impl_->device);
  impl_->upload(impl_->theta.data(), host, impl_->a.n_params(), Xfer::Params);
  impl_->stream.sync();
}

template <class T>
void CudaNetwork<T>::get_parameters(T* host) {
  DeviceGuard guard(impl_->device);
  impl_->download(host, impl_->theta.data(), impl_->a.n_params(), Xfer::Params);
  impl_->stream.sync();
}

template <class T>
void CudaNetwork<T>::forward(const T* x, i64 n, i64 first, bool link, T* out, i64 x_key) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  const Architecture& a = I.a;
  const i64 L = a.n_layers(), K = a.n_outputs(), din = a.layers[first].n_in;
  const T* xd = I.data_in(I.x_ev, x_key, x, n * din, "the input X");
  I.out_ev.reserve(n * K, "the network output");
  const i64 step = eval_chunk(a, n);
  I.ev.reserve(a, step, 1, first, I.n_l2());
  for (i64 s = 0; s < n; s += step) {
    const i64 m = std::min(step, n - s);
    I.forward(I.ev, I.theta.data(), xd + s * din, m, first, L - 1);
    I.copy_d2d(I.out_ev.data() + s * K, I.ev.output(a, L - 1), m * K);
  }
  if (link) kern::apply_link<T>(I.st(), static_cast<int>(a.loss), I.out_ev.data(), n, K);
  I.download(out, I.out_ev.data(), n * K);
  I.stream.sync();
}

template <class T>
void CudaNetwork<T>::layer_input(const T* x, i64 n, i64 layer, T* out, i64 x_key) {
  Impl& I = *impl_;
  const Architecture& a = I.a;
  if (layer == 0) {
    std::memcpy(out, x, sizeof(T) * n * a.n_inputs());
    return;
  }
  DeviceGuard guard(I.device);
  const i64 din = a.n_inputs(), w = a.layers[layer - 1].n_out;
  const T* xd = I.data_in(I.x_ev, x_key, x, n * din, "the input X");
  I.out_ev.reserve(n * w, "the layer input");
  const i64 step = eval_chunk(a, n);
  I.ev.reserve(a, step, 1, 0, I.n_l2());
  for (i64 s = 0; s < n; s += step) {
    const i64 m = std::min(step, n - s);
    I.forward(I.ev, I.theta.data(), xd + s * din, m, 0, layer - 1);
    I.copy_d2d(I.out_ev.data() + s * w, I.ev.output(a, layer - 1), m * w);
  }
  I.download(out, I.out_ev.data(), n * w);
  I.stream.sync();
}

template <class T>
T CudaNetwork<T>::loss_and_grad(const T* x, const T* y, i64 n, i64 input_layer, i64 first, i64 last, const T* theta,
                                T* grad, i64 x_key, i64 y_key) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  const Architecture& a = I.a;
  const i64 L = a.n_layers(), K = a.n_outputs(), P = a.n_params();
  if (last < 0) last = L - 1;
  if (input_layer < 0) input_layer = first;
  if (input_layer > first) throw std::invalid_argument("input_layer: expected <= first");
  const i64 din = a.layers[input_layer].n_in;
  const T* xd = I.data_in(I.x_ev, x_key, x, n * din, "the input X");
  const T* yd = I.data_in(I.y_ev, y_key, y, n * K, "the targets Y");
  const T* th = I.theta.data();
  if (theta) {
    I.theta_ev.reserve(P, "the parameter vector theta");
    I.upload(I.theta_ev.data(), theta, P, Xfer::Params);
    th = I.theta_ev.data();
  }
  if (!grad) return static_cast<T>(I.objective(th, xd, yd, n, input_layer));
  I.grad_ev.reserve(P, "the gradient");
  const i64 step = eval_chunk(a, n);
  I.ev.reserve(a, step, 1, input_layer, I.n_l2());
  const i64 chunks = (n + step - 1) / step;
  I.scal.reserve(chunks + 1, "the loss scalars");
  const T inv_n = T(1) / T(n);
  for (i64 c = 0, s = 0; s < n; ++c, s += step) {
    const i64 m = std::min(step, n - s);
    I.forward(I.ev, th, xd + s * din, m, input_layer, L - 1);
    kern::head_loss<T>(I.st(), static_cast<int>(a.loss), I.ev.output(a, L - 1), yd + s * K, m, K, inv_n, I.ev.g.data(),
                       I.ev.rowloss.data());
    kern::finalize_loss<T>(I.st(), I.ev.rowloss.data(), m, kern::head_scale<T>(static_cast<int>(a.loss), K, inv_n), nullptr, 0,
                           I.scal.data() + c, nullptr, nullptr, {});
    I.backward(I.ev, th, 1, first, first, last, I.grad_ev.data(), c > 0, false, nullptr);
  }
  I.l2_terms(I.ev, th, I.grad_ev.data(), first, last);
  kern::finalize_loss<T>(I.st(), nullptr, 0, 0.0, I.ev.reg.data(), I.n_l2() * kern::kL2Blocks, I.scal.data() + chunks,
                         nullptr, nullptr, {});
  std::vector<double> h(chunks + 1);
  I.download(h.data(), I.scal.data(), chunks + 1);
  const i64 base = a.offsets[first], len = a.offsets[last + 1] - base;
  I.download(grad, I.grad_ev.data() + base, len);
  I.stream.sync();
  long double total = 0;
  for (i64 c = 0; c < chunks; ++c) total += static_cast<T>(h[c]);
  total += static_cast<T>(h[chunks]);
  return static_cast<T>(total);
}

template <class T>
void CudaNetwork<T>::relu_patterns(const T* x, i64 n, const std::vector<i64>& layers, std::uint64_t* out, i64 n_words,
                                   i64 x_key) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  const Architecture& a = I.a;
  const i64 d = a.n_inputs();
  i64 top = 0;
  for (i64 l : layers) top = std::max(top, l);
  const T* xd = I.data_in(I.x_ev, x_key, x, n * d, "the input X");
  I.bits.reserve(n * n_words, "the packed patterns");
  SENSINET_CUDA_CHECK(cudaMemsetAsync(I.bits.data(), 0, sizeof(unsigned long long) * n * n_words, I.st()));
  const i64 step = eval_chunk(a, n);
  I.ev.reserve(a, step, 1, 0, I.n_l2());
  for (i64 s = 0; s < n; s += step) {
    const i64 m = std::min(step, n - s);
    I.forward(I.ev, I.theta.data(), xd + s * d, m, 0, top);
    i64 bit0 = 0;
    for (i64 l : layers) {
      const i64 w = a.layers[l].inner_width();
      kern::pack_bits<T>(I.st(), I.ev.z[l].data(), m, w, bit0, I.bits.data() + s * n_words, n_words);
      bit0 += w;
    }
  }
  static_assert(sizeof(unsigned long long) == sizeof(std::uint64_t), "patterns are 64-bit words");
  I.download(reinterpret_cast<unsigned long long*>(out), I.bits.data(), n * n_words);
  I.stream.sync();
}

template <class T>
bool CudaNetwork<T>::has_state(i64 key) const {
  for (const auto& x : impl_->states)
    if (x.key == key) return true;
  return false;
}

template <class T>
void CudaNetwork<T>::download_state(i64 key, T* m, T* v) {
  Impl& I = *impl_;
  DeviceGuard guard(I.device);
  auto* s = I.find_state(key);
  if (s == nullptr) throw std::invalid_argument("state: no optimizer state with key " + std::to_string(key));
  I.download(m, s->m.data(), I.a.n_params(), Xfer::State);
  I.download(v, s->v.data(), I.a.n_params(), Xfer::State);
  I.stream.sync();
}

template <class T>
void CudaNetwork<T>::drop_state(i64 key) {
  DeviceGuard guard(impl_->device);
  auto& v = impl_->states;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it->key == key) {
      impl_->stream.sync();  // no kernel may still use it
      v.erase(it);
      return;
    }
}

template <class T>
void CudaNetwork<T>::forget_data(i64 key) {
  DeviceGuard guard(impl_->device);
  auto& v = impl_->resident;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it->key == key) {
      impl_->stream.sync();
      v.erase(it);
      return;
    }
}

template <class T>
std::string CudaNetwork<T>::device_name() const {
  cudaDeviceProp p{};
  SENSINET_CUDA_CHECK(cudaGetDeviceProperties(&p, impl_->device));
  return p.name;
}

template <class T>
MemoryInfo CudaNetwork<T>::memory_info() const {
  DeviceGuard guard(impl_->device);
  MemoryInfo m;
  SENSINET_CUDA_CHECK(cudaMemGetInfo(&m.free, &m.total));
  m.model_bytes = impl_->bytes();
  m.resident_bytes = impl_->resident_bytes();
  return m;
}

template <class T>
TransferStats CudaNetwork<T>::transfer_stats() const {
  return impl_->stats;
}

template <class T>
void CudaNetwork<T>::reset_transfer_stats() {
  impl_->stats = TransferStats{};
}

template <class T>
void CudaNetwork<T>::free_workspace() {
  DeviceGuard guard(impl_->device);
  impl_->stream.sync();
  impl_->free_workspace();
}

template class CudaNetwork<float>;
template class CudaNetwork<double>;

}  // namespace sensinet::cuda
