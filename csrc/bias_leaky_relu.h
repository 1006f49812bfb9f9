// zoo::bias_leaky_relu: LeakyReLU(x + bias on dim 1) * scale (StyleGAN2's fused_bias_act), CPU and CUDA.
#pragma once

#include "common.h"

#include <tuple>

namespace zoo {

at::Tensor bias_leaky_relu_cpu(const at::Tensor& x, const std::optional<at::Tensor>& bias, double negative_slope,
                               double scale);

// Backward from the output (the sign of the pre-activation is the sign of out, as scale > 0 and slope >= 0):
// (grad_x in out's layout, grad_bias (C,) when bias_grad else (0,)).
std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_cpu(const at::Tensor& grad_out, const at::Tensor& out,
                                                                double negative_slope, double scale, bool bias_grad);

#ifdef WITH_CUDA
at::Tensor bias_leaky_relu_cuda(const at::Tensor& x, const std::optional<at::Tensor>& bias, double negative_slope,
                                double scale);
std::tuple<at::Tensor, at::Tensor> bias_leaky_relu_backward_cuda(const at::Tensor& grad_out, const at::Tensor& out,
                                                                 double negative_slope, double scale, bool bias_grad);
#endif

void check_bias_leaky_relu_args(const at::Tensor& x, const std::optional<at::Tensor>& bias, double negative_slope,
                                double scale);
void check_bias_leaky_relu_backward_args(const at::Tensor& grad_out, const at::Tensor& out, double negative_slope,
                                         double scale, bool bias_grad);

}  // namespace zoo
