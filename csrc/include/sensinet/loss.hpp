// Heads: loss value of a batch and its gradient with respect to the network output.
#pragma once
#include <cmath>

#include "sensinet/activations.hpp"
#include "sensinet/config.hpp"

namespace sensinet {

// Returns sum over the rows of the per-sample loss times inv_n, and writes dout = d(that)/d(out).
// inv_n = 1/N of the whole data set lets a full-batch loss be accumulated over row chunks. With row weights
// rw (sample weights; nullptr: all 1) each row's loss and gradient are multiplied by its weight, and inv_n
// is then 1 / (sum of the weights), so the loss is the weighted mean.
//   mse:                  mean over outputs of (out - y)^2          -> J is the mean squared error
//   cross_entropy:        sum_k y_k (logsumexp(out) - out_k)        (softmax on logits; y one-hot or soft)
//   binary_cross_entropy: sum_k softplus(out_k) - y_k out_k         (sigmoid on each logit)
template <class T, class OutM, class YM>
T loss_and_dout(Loss loss, const OutM& out, const YM& y, RowMatrix<T>& dout, T inv_n, const T* rw = nullptr) {
  const Index n = out.rows(), k = out.cols();
  dout.resize(n, k);
  long double total = 0;
  switch (loss) {
    case Loss::MSE: {
      const T s = inv_n / T(k);
      dout = out - y;
      if (rw) {
        for (Index i = 0; i < n; ++i) {
          total += static_cast<long double>(rw[i]) * static_cast<long double>(dout.row(i).squaredNorm());
          dout.row(i) *= rw[i];
        }
        total *= s;
      } else {
        total = static_cast<long double>(dout.squaredNorm()) * s;
      }
      dout *= T(2) * s;
      break;
    }
    case Loss::CrossEntropy: {
      for (Index i = 0; i < n; ++i) {
        const T m = out.row(i).maxCoeff();
        auto e = (out.row(i).array() - m).exp();
        const T z = e.sum();
        const T lse = m + std::log(z);
        const T ysum = y.row(i).sum();
        const T w = rw ? rw[i] : T(1);
        total += static_cast<long double>(w) * static_cast<long double>((y.row(i).array() * (lse - out.row(i).array())).sum());
        dout.row(i) = (ysum / z) * e.matrix() - y.row(i);
        if (rw) dout.row(i) *= w;
      }
      total *= inv_n;
      dout *= inv_n;
      break;
    }
    case Loss::BinaryCrossEntropy: {
      auto z = out.array();
      auto sp = z.max(T(0)) + (-z.abs()).exp().log1p();
      dout = ((T(1) / (T(1) + (-z).exp())) - y.array()).matrix() * inv_n;
      if (rw) {
        const auto rowloss = (sp - y.array() * z).rowwise().sum();
        for (Index i = 0; i < n; ++i) {
          total += static_cast<long double>(rw[i]) * static_cast<long double>(rowloss(i));
          dout.row(i) *= rw[i];
        }
        total *= inv_n;
      } else {
        total = static_cast<long double>((sp - y.array() * z).sum()) * inv_n;
      }
      break;
    }
  }
  return static_cast<T>(total);
}

// Output -> prediction: identity for mse, softmax / sigmoid probabilities for the classification heads.
template <class T>
void apply_link(Loss loss, RowMatrix<T>& out) {
  if (loss == Loss::CrossEntropy) {
    for (Index i = 0; i < out.rows(); ++i) {
      out.row(i).array() = (out.row(i).array() - out.row(i).maxCoeff()).exp();
      out.row(i) /= out.row(i).sum();
    }
  } else if (loss == Loss::BinaryCrossEntropy) {
    out.array() = T(1) / (T(1) + (-out.array()).exp());
  }
}

}  // namespace sensinet
