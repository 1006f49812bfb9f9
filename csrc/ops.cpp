// Registration of the zoo fused ops: TORCH_LIBRARY schemas and the CPU (and, when built with CUDA, CUDA) kernels.
// Autograd is in autograd.cpp; the fake (meta) kernels are registered from Python (zoo/ops/_registration.py).
#include <torch/extension.h>
#include <torch/library.h>

#include "bias_leaky_relu.h"
#include "instance_norm_act.h"

TORCH_LIBRARY(zoo, m) {
  m.def("instance_norm_act(Tensor x, Tensor? weight, Tensor? bias, float eps, float negative_slope)"
        " -> (Tensor, Tensor, Tensor)");
  m.def("instance_norm_act_backward(Tensor grad_out, Tensor x, Tensor mean, Tensor rstd, Tensor? weight,"
        " Tensor? bias, float negative_slope) -> (Tensor, Tensor, Tensor)");
  m.def("bias_leaky_relu(Tensor x, Tensor? bias, float negative_slope, float scale) -> Tensor");
  m.def("bias_leaky_relu_backward(Tensor grad_out, Tensor out, float negative_slope, float scale, bool bias_grad)"
        " -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(zoo, CPU, m) {
  m.impl("instance_norm_act", &zoo::instance_norm_act_cpu);
  m.impl("instance_norm_act_backward", &zoo::instance_norm_act_backward_cpu);
  m.impl("bias_leaky_relu", &zoo::bias_leaky_relu_cpu);
  m.impl("bias_leaky_relu_backward", &zoo::bias_leaky_relu_backward_cpu);
}

#ifdef WITH_CUDA
TORCH_LIBRARY_IMPL(zoo, CUDA, m) {
  m.impl("instance_norm_act", &zoo::instance_norm_act_cuda);
  m.impl("instance_norm_act_backward", &zoo::instance_norm_act_backward_cuda);
  m.impl("bias_leaky_relu", &zoo::bias_leaky_relu_cuda);
  m.impl("bias_leaky_relu_backward", &zoo::bias_leaky_relu_backward_cuda);
}
#endif

// The digest of the sources this binary was built from (setup.py passes it), so zoo.ops can tell a binary built
// ahead of time from older sources and build just in time instead of loading stale kernels.
#ifndef ZOO_OPS_SOURCES_SHA256
#define ZOO_OPS_SOURCES_SHA256 unknown
#endif
#define ZOO_STR2(x) #x
#define ZOO_STR(x) ZOO_STR2(x)
extern "C" __attribute__((used, visibility("default"))) const char zoo_ops_sources_sha256[] =
    "ZOO_OPS_SOURCES_SHA256=" ZOO_STR(ZOO_OPS_SOURCES_SHA256) ";";

// An importable module (zoo._C when built by setup.py); importing it runs the registrations above.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.doc() = "zoo fused ops (registered as torch.ops.zoo.*)"; }
