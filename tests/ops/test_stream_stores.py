"""Large CPU outputs are written with non-temporal (streaming) stores: the same bits as plain stores, any layout.

The threshold (half the last-level cache by default) is read once per process from ZOO_OPS_STREAM_BYTES, so each
setting runs in its own interpreter: 0 streams every output whose rows or planes are whole cache lines, a huge value
none. Both must give bitwise the same outputs and gradients, and agree with the reference.
"""
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.usefixtures("cpp")

# (shape, channels_last): NCHW planes of whole lines (and one that is not), channels-last rows of whole lines split
# across tasks (N=1) or whole samples per task (N=9), and rows of 37 channels that are not whole lines
CASES = [((2, 3, 32, 32), False), ((2, 3, 5, 7), False), ((1, 32, 64, 80), True), ((9, 48, 6, 10), True),
         ((2, 37, 9, 11), True)]

_SCRIPT = """
import sys, torch, zoo.ops as ops
cases, path = eval(sys.argv[1]), sys.argv[2]
results = []
for dtype in (torch.float32, torch.float64):
    for shape, cl in cases:
        g = torch.Generator().manual_seed(0)
        x = (torch.randn(shape, generator=g, dtype=torch.float64) * 2 + 1).to(dtype)
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        w, b = torch.rand(shape[1], generator=g, dtype=dtype) + 0.5, torch.randn(shape[1], generator=g, dtype=dtype)
        grad_out = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
        per_backend = []
        for backend in ("cpp", "reference"):
            xs, ws, bs = (t.detach().clone().requires_grad_() for t in (x, w, b))
            with ops.use_backend(backend):
                out = ops.instance_norm_act(xs, ws, bs)
            out.backward(grad_out)
            per_backend.append([out.detach(), xs.grad, ws.grad, bs.grad])
        results.append(per_backend)
torch.save(results, path)
"""


def _run(tmp_path, stream_bytes: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZOO_OPS_STREAM_BYTES": stream_bytes, "ZOO_OPS_BACKEND": "cpp"}
    path = tmp_path / f"stream-{stream_bytes}.pt"
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, repr(CASES), str(path)], env=env, capture_output=True,
                          text=True, timeout=300)
    return proc, path


def test_streamed_outputs_are_bitwise_those_of_plain_stores(tmp_path):
    runs = {}
    for setting in ("0", str(2**62)):
        proc, path = _run(tmp_path, setting)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[setting] = torch.load(path, weights_only=True)
    for streamed, plain in zip(runs["0"], runs[str(2**62)]):
        (cpp_s, ref), (cpp_p, _) = streamed, plain
        for a, b, r in zip(cpp_s, cpp_p, ref):
            assert torch.equal(a, b)
            assert a.stride() == b.stride()
            scale = max(1.0, r.abs().max().item())
            tol = 1e-5 if r.dtype == torch.float32 else 1e-10
            torch.testing.assert_close(a / scale, r / scale, rtol=tol, atol=tol)


@pytest.mark.parametrize("value", ["lots", "-1", ""])
def test_bad_stream_threshold_is_a_clear_error(tmp_path, value):
    proc, _ = _run(tmp_path, value)
    assert proc.returncode != 0
    assert "ZOO_OPS_STREAM_BYTES must be a non-negative whole number of bytes" in proc.stderr, proc.stderr[-3000:]
