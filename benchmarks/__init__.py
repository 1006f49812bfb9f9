"""pytest-benchmark modules for zoo (fused ops, models) and the `python -m benchmarks` runner."""
