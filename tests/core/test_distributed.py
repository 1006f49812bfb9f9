"""`torchrun --nproc_per_node 2 -m zoo train` on CPU (gloo) with a real installed plugin providing the recipe."""
from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from zoo.train.checkpoint import load_checkpoint

from .conftest import subprocess_env


def _digest(state) -> str:
    h = hashlib.sha256()
    for k, v in sorted(state.items()):
        h.update(k.encode() + v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.slow
def test_torchrun_two_processes_train_in_sync(plugin_targets, tmp_path):
    run, ranks = tmp_path / "run", tmp_path / "ranks"
    ranks.mkdir()
    env = subprocess_env(plugin_targets["toytrain"], ZOO_FIXTURE_RANK_DIR=str(ranks), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "zoo", "train", "fixture-toy-train", "--out", str(run), "--epochs", "2", "--batch-size", "4",
           "--lr", "0.1", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    ckpt = load_checkpoint(run)
    assert ckpt["model"] == "fixture-toy-train" and ckpt["epoch"] == 2
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint.pt", "log.jsonl", "samples"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]  # written by rank 0 only
    assert len(re.findall(r"^epoch 1/2 \(", proc.stderr, re.M)) == 1  # progress lines from rank 0 only
    assert len(re.findall(r"^epoch 2/2 \(", proc.stderr, re.M)) == 1

    # each rank trains on different data and noise; averaged gradients keep their parameters identical
    digests = {p.stem: p.read_text() for p in ranks.iterdir()}
    assert sorted(digests) == ["rank0-epoch1", "rank0-epoch2", "rank1-epoch1", "rank1-epoch2"]
    assert digests["rank0-epoch1"] == digests["rank1-epoch1"]
    assert digests["rank0-epoch2"] == digests["rank1-epoch2"]
    assert digests["rank0-epoch1"] != digests["rank0-epoch2"]  # and they did train
    assert _digest(ckpt["modules"]["G"]) == digests["rank0-epoch2"]


def _zoo(env, cwd, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zoo", *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_resume_after_sigkill_matches_the_uninterrupted_run(plugin_targets, tmp_path):
    env = subprocess_env(plugin_targets["toytrain"], OMP_NUM_THREADS="1")
    flags = ["--epochs", "3", "--batch-size", "4", "--lr", "0.05", "--seed", "11"]
    ref = _zoo(env, tmp_path, "train", "fixture-toy-train", "--out", "ref", *flags)
    victim = _zoo(env, tmp_path, "train", "fixture-toy-train", "--out", "killed", *flags, "--step-delay", "0.05")
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the second epoch (16 steps of >= 0.05 s each)
    victim.send_signal(signal.SIGKILL)
    _, victim_err = victim.communicate()
    assert victim.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{victim_err}"
    assert load_checkpoint(tmp_path / "killed")["epoch"] in (1, 2)
    assert ref.wait(timeout=300) == 0, ref.communicate()
    resumed = _zoo(env, tmp_path, "train", "fixture-toy-train", "--out", "killed", "--epochs", "3", "--resume",
                   "--step-delay", "0")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, b = load_checkpoint(tmp_path / "ref"), load_checkpoint(tmp_path / "killed")
    assert a["epoch"] == b["epoch"] == 3
    for part in ("modules", "optimizers", "export"):
        assert _digest_tree(a[part]) == _digest_tree(b[part]), part


def _digest_tree(tree) -> str:
    """A digest of every tensor and value in a nested checkpoint part."""
    h = hashlib.sha256()

    def walk(x, path):
        if isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(x[k], f"{path}/{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{path}/{i}")
        elif hasattr(x, "numpy"):
            h.update(path.encode() + str(x.dtype).encode() + x.detach().cpu().numpy().tobytes())
        else:
            h.update(f"{path}={x!r}".encode())

    walk(tree, "")
    return h.hexdigest()
