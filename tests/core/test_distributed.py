"""`torchrun --nproc_per_node 2 -m zoo train` on CPU (gloo) with a real installed plugin providing the recipe."""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

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
