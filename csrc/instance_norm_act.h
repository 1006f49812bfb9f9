// zoo::instance_norm_act: LeakyReLU(InstanceNorm(x) * weight + bias), forward and backward, CPU and CUDA.
#pragma once

#include "common.h"

#include <tuple>

namespace zoo {

// Forward: (out in x's layout, mean (N, C), rstd (N, C)); mean/rstd in float (double for double inputs).
std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_cpu(
    const at::Tensor& x, const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
    double eps, double negative_slope);

// Backward: (grad_x in x's layout, grad_weight (C,) or (0,), grad_bias (C,) or (0,)).
std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean, const at::Tensor& rstd,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias, double negative_slope);

#ifdef WITH_CUDA
std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_cuda(
    const at::Tensor& x, const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias,
    double eps, double negative_slope);
std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean, const at::Tensor& rstd,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& bias, double negative_slope);
#endif

// Checks shared by the CPU and CUDA host code.
void check_instance_norm_act_args(const at::Tensor& x, const std::optional<at::Tensor>& weight,
                                  const std::optional<at::Tensor>& bias, double eps);
void check_instance_norm_act_backward_args(const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& mean,
                                           const at::Tensor& rstd, const std::optional<at::Tensor>& weight,
                                           const std::optional<at::Tensor>& bias);

}  // namespace zoo
