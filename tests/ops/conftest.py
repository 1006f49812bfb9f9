"""Fixtures of the zoo.ops tests: the devices to run on and the compiled extension (required, not skipped)."""
import os

import pytest
import torch

from zoo.ops import _backend

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Every available device: the same correctness tests run on CUDA wherever it exists."""
    return request.param


@pytest.fixture(scope="session")
def cpp() -> None:
    """The compiled ops must load (built by setup.py or just in time); only ZOO_OPS_BACKEND=reference skips them."""
    if os.environ.get("ZOO_OPS_BACKEND", "").strip().lower() == "reference":
        pytest.skip("ZOO_OPS_BACKEND=reference: compiled ops deliberately disabled")
    if not _backend.load_extension():
        pytest.fail(f"the compiled zoo ops could not be loaded: {_backend.backend_info()['extension']}")
