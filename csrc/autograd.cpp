// Autograd of the zoo ops, in C++: the forward calls the device kernel below autograd, the backward calls the fused
// backward op. Registered on the Autograd key, so a training step pays no Python per op call (a Python autograd
// function costs tens of microseconds per call, more than the kernels themselves on small tensors).
//
// When a graph of the gradient is requested (create_graph=True: double backward, e.g. R1 penalties) the backward
// is computed by ATen ops instead, the same composition as the Python reference (zoo/ops/reference.py), which
// PyTorch differentiates again.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "common.h"

namespace zoo {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A per-channel vector shaped to broadcast over dim 1 of an `ndim`-dimensional tensor.
at::Tensor channel_view(const at::Tensor& t, int64_t ndim) {
  std::vector<int64_t> shape(ndim, 1);
  shape[1] = -1;
  return t.reshape(shape);
}

std::vector<int64_t> spatial_dims(int64_t ndim) {
  std::vector<int64_t> dims;
  for (int64_t d = 2; d < ndim; ++d) dims.push_back(d);
  return dims;
}

// Which of the forward's tensor arguments (undefined = an absent optional) need a gradient. The context numbers
// only the tensors actually passed, so an absent optional shifts the indices of those after it.
std::vector<bool> needs_grad(AutogradContext* ctx, const variable_list& args) {
  std::vector<bool> needs(args.size(), false);
  size_t edge = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].defined()) needs[i] = ctx->needs_input_grad(edge++);
  }
  return needs;
}

// d(out)/d(args[i]) . grad_out for each argument that needs it, as a differentiable graph (create_graph); the
// other slots stay undefined.
variable_list graph_grads(const at::Tensor& out, const at::Tensor& grad_out, const variable_list& args,
                          const std::vector<bool>& needs) {
  variable_list inputs, result(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (needs[i]) inputs.push_back(args[i]);
  }
  if (inputs.empty()) return result;
  const variable_list grads = torch::autograd::grad({out}, inputs, {grad_out}, /*retain_graph=*/true,
                                                    /*create_graph=*/true, /*allow_unused=*/true);
  for (size_t i = 0, k = 0; i < args.size(); ++i) {
    if (needs[i]) result[i] = grads[k++];
  }
  return result;
}

class InstanceNormActFunction : public torch::autograd::Function<InstanceNormActFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const std::optional<at::Tensor>& weight,
                               const std::optional<at::Tensor>& bias, double eps, double negative_slope) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("zoo::instance_norm_act", "")
                               .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                                   const at::Tensor&, const std::optional<at::Tensor>&,
                                   const std::optional<at::Tensor>&, double, double)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [out, mean, rstd] = op.call(x, weight, bias, eps, negative_slope);
    ctx->save_for_backward({x, weight.value_or(at::Tensor()), bias.value_or(at::Tensor()), mean, rstd});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->mark_non_differentiable({mean, rstd});
    return {out, mean, rstd};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("zoo::instance_norm_act_backward", "")
                               .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
                                   const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   const std::optional<at::Tensor>&, const std::optional<at::Tensor>&, double)>();
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2], &grad_out = grad_outputs[0];
    const double eps = ctx->saved_data["eps"].toDouble(), slope = ctx->saved_data["negative_slope"].toDouble();
    variable_list result(5);
    if (!grad_out.defined()) return result;
    const std::vector<bool> needs = needs_grad(ctx, {x, weight, bias});
    if (at::GradMode::is_enabled()) {
      const at::ScalarType ct = opmath_dtype(x.scalar_type());
      const at::Tensor xc = x.to(ct);
      const std::vector<int64_t> dims = spatial_dims(x.dim());
      const at::Tensor centered = xc - xc.mean(dims, /*keepdim=*/true);
      at::Tensor y = centered * at::rsqrt(centered.square().mean(dims, /*keepdim=*/true) + eps);
      if (weight.defined()) y = y * channel_view(weight.to(ct), x.dim());
      if (bias.defined()) y = y + channel_view(bias.to(ct), x.dim());
      const variable_list grads =
          graph_grads(at::leaky_relu(y, slope).to(x.scalar_type()), grad_out, {x, weight, bias}, needs);
      std::copy(grads.begin(), grads.end(), result.begin());
      return result;
    }
    const std::optional<at::Tensor> w = weight.defined() ? std::optional<at::Tensor>(weight) : std::nullopt;
    const std::optional<at::Tensor> b = bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt;
    auto [grad_x, grad_w, grad_b] = op.call(grad_out, x, saved[3], saved[4], w, b, slope);
    if (needs[0]) result[0] = grad_x;
    if (needs[1]) result[1] = grad_w;
    if (needs[2]) result[2] = grad_b;
    return result;
  }
};

class BiasLeakyReluFunction : public torch::autograd::Function<BiasLeakyReluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const std::optional<at::Tensor>& bias,
                            double negative_slope, double scale) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("zoo::bias_leaky_relu", "")
                               .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&, double, double)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor out = op.call(x, bias, negative_slope, scale);
    ctx->save_for_backward({out});
    ctx->saved_data["has_bias"] = has(bias);
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("zoo::bias_leaky_relu_backward", "")
                               .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                        double, double, bool)>();
    const at::Tensor out = ctx->get_saved_variables()[0];
    const at::Tensor& grad_out = grad_outputs[0];
    const double slope = ctx->saved_data["negative_slope"].toDouble(), scale = ctx->saved_data["scale"].toDouble();
    variable_list result(4);
    if (!grad_out.defined()) return result;
    const bool need_x = ctx->needs_input_grad(0);
    const bool need_b = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(1);
    if (at::GradMode::is_enabled()) {
      // differentiable form: the gain is piecewise constant, read from the sign of the (detached) output
      const at::Tensor gain = at::full_like(out, scale * slope, grad_out.scalar_type())
                                  .masked_fill_(out.detach() > 0, scale);
      const at::Tensor grad_x = grad_out * gain;
      if (need_x) result[0] = grad_x;
      if (need_b) {
        std::vector<int64_t> dims = spatial_dims(out.dim());
        dims.insert(dims.begin(), 0);
        result[1] = grad_x.sum(dims);
      }
      return result;
    }
    auto [grad_x, grad_b] = op.call(grad_out, out, slope, scale, need_b);
    if (need_x) result[0] = grad_x;
    if (need_b) result[1] = grad_b;
    return result;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> instance_norm_act_autograd(const at::Tensor& x,
                                                                          const std::optional<at::Tensor>& weight,
                                                                          const std::optional<at::Tensor>& bias,
                                                                          double eps, double negative_slope) {
  const variable_list out = InstanceNormActFunction::apply(x, weight, bias, eps, negative_slope);
  return {out[0], out[1], out[2]};
}

at::Tensor bias_leaky_relu_autograd(const at::Tensor& x, const std::optional<at::Tensor>& bias,
                                    double negative_slope, double scale) {
  return BiasLeakyReluFunction::apply(x, bias, negative_slope, scale);
}

}  // namespace
}  // namespace zoo

TORCH_LIBRARY_IMPL(zoo, Autograd, m) {
  m.impl("instance_norm_act", &zoo::instance_norm_act_autograd);
  m.impl("bias_leaky_relu", &zoo::bias_leaky_relu_autograd);
}
