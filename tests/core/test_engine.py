"""The training engine with the toy recipe: exact resume, run protection, outputs, export, options, atomicity."""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import ConfigError, DataError
from zoo.train import checkpoint as ckpt_mod
from zoo.train import export_run, make_options, parse_options, run_training
from zoo.train.checkpoint import RunLock, load_checkpoint
from zoo.weights import read_metadata, read_state_dict, sha256_file

from .toy import TinyOptions, TinyRecipe, build_tiny, tiny_spec


@pytest.fixture
def toy(register_spec):
    return register_spec(tiny_spec("tiny-gen"))


def _train(run: Path, *flags: str) -> Path:
    return run_training("tiny-gen", ["--out", str(run), *flags])


def _same(a, b, path="") -> None:
    """Assert two checkpoint trees are equal, tensors bitwise."""
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}/{i}")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), path
    else:
        assert a == b, path


def _losses(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (run / "log.jsonl").read_text().splitlines()]


def test_resume_reproduces_the_uninterrupted_run_bitwise(toy, tmp_path):
    full, split = tmp_path / "full", tmp_path / "split"
    _train(full, "--epochs", "3", "--lr", "0.01", "--seed", "5")
    _train(split, "--epochs", "1", "--lr", "0.01", "--seed", "5")
    assert load_checkpoint(split)["epoch"] == 1
    _train(split, "--epochs", "3", "--resume")  # lr and seed come from the saved run
    a, b = load_checkpoint(full), load_checkpoint(split)
    assert a["options"]["lr"] == b["options"]["lr"] == 0.01 and b["options"]["resume"] is True
    a["options"].pop("resume"), b["options"].pop("resume")
    a["options"].pop("out"), b["options"].pop("out")
    _same(a, b)
    assert a["epoch"] == 3
    assert _losses(full) == _losses(split) and [r["epoch"] for r in _losses(full)] == [1, 2, 3]
    export_run(full, tmp_path / "a.safetensors")
    export_run(split, tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    # and training really changes the weights and depends on the seed
    _train(tmp_path / "other", "--epochs", "3", "--lr", "0.01", "--seed", "6")
    other = load_checkpoint(tmp_path / "other")
    assert not torch.equal(other["modules"]["G"]["net.0.weight"], a["modules"]["G"]["net.0.weight"])


def test_resume_of_a_finished_run_does_nothing(toy, tmp_path, capsys):
    run = tmp_path / "run"
    _train(run, "--epochs", "1")
    before = (run / "checkpoint.pt").read_bytes()
    _train(run, "--epochs", "1", "--resume")
    assert (run / "checkpoint.pt").read_bytes() == before
    assert "already trained for 1 epochs" in capsys.readouterr().err


def test_existing_run_needs_resume(toy, tmp_path):
    run = tmp_path / "run"
    _train(run, "--epochs", "1")
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        _train(run, "--epochs", "2")


def test_resume_refuses_a_run_of_another_model(toy, register_spec, tmp_path):
    register_spec(tiny_spec("tiny-gen-2"))
    run = tmp_path / "run"
    _train(run, "--epochs", "1")
    with pytest.raises(ConfigError, match="is a run of 'tiny-gen', not 'tiny-gen-2'"):
        run_training("tiny-gen-2", ["--out", str(run), "--epochs", "2", "--resume"])


def test_run_lock_refuses_a_concurrent_run(toy, tmp_path):
    run = tmp_path / "run"
    with RunLock(run):
        with pytest.raises(ConfigError, match="another training is running in"):
            _train(run, "--epochs", "1")
        assert not (run / "checkpoint.pt").exists()
    _train(run, "--epochs", "1")  # released: the run can start
    assert (run / "checkpoint.pt").exists()


def test_samples_and_log_per_epoch(toy, tmp_path):
    run = _train(tmp_path / "run", "--epochs", "3")
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png", "epoch_003.png"]
    with Image.open(run / "samples" / "epoch_003.png") as im:
        assert im.size == (4 * 6 + 2, 6 + 2) and im.mode == "L"  # 4 samples of 1x4x4 in one row, 2 px borders
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(set(r) == {"epoch", "seconds", "loss"} and r["loss"] > 0 for r in records)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    run2 = _train(tmp_path / "run2", "--epochs", "3", "--sample-every", "2")
    assert sorted(p.name for p in (run2 / "samples").iterdir()) == ["epoch_002.png", "epoch_003.png"]


def test_log_line_of_an_epoch_rerun_after_a_kill_is_replaced_not_repeated(toy, tmp_path):
    run = _train(tmp_path / "run", "--epochs", "2")
    log = run / "log.jsonl"
    lines = log.read_text().splitlines()
    # a kill after epoch 3's log line was written but before its checkpoint: the log is one epoch ahead
    log.write_text("\n".join([*lines, json.dumps({"epoch": 3, "seconds": 0.0, "loss": -1.0})]) + "\n")
    _train(run, "--epochs", "3", "--resume")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[:2] == [json.loads(line) for line in lines] and records[2]["loss"] > 0


def test_export_loads_with_zoo_load(toy, tmp_path):
    run = _train(tmp_path / "run", "--epochs", "2")
    out, sha = export_run(run, tmp_path / "g.safetensors")
    assert sha == sha256_file(out) and (tmp_path / "g.safetensors.sha256").read_text().startswith(sha)
    meta = read_metadata(out)
    assert meta["zoo.model"] == "tiny-gen" and meta["zoo.epoch"] == "2" and meta["zoo.dtype"] == "as-trained"
    model = zoo.load("tiny-gen", weights=out)
    trained = load_checkpoint(run)["modules"]["G"]
    assert all(torch.equal(model.state_dict()[k], trained[k]) for k in trained)
    assert not model.training


def test_export_half(toy, tmp_path):
    run = _train(tmp_path / "run", "--epochs", "1")
    out, _ = export_run(run, tmp_path / "g16.safetensors", half=True)
    state = read_state_dict(out)
    assert {v.dtype for v in state.values()} == {torch.float16}
    assert read_metadata(out)["zoo.dtype"] == "float16"
    full = load_checkpoint(run)["modules"]["G"]
    model = zoo.load("tiny-gen", weights=out)
    assert model.net[0].weight.dtype == torch.float32
    assert torch.equal(model.net[0].weight, full["net.0.weight"].half().float())
    assert (tmp_path / "g16.safetensors").stat().st_size < export_run(run, tmp_path / "g32.safetensors")[0].stat(
        ).st_size


@dataclass
class WidthOptions(TinyOptions):
    width: int = field(default=8, metadata={"help": "hidden width"})


class WidthRecipe(TinyRecipe):
    """The toy recipe with a non-default architecture chosen by a flag, exported with its config."""

    Options = WidthOptions

    def build(self, device):
        self.G = build_tiny(width=self.opts.width).to(device)
        return {"G": self.G}, {"G": torch.optim.Adam(self.G.parameters(), lr=self.opts.lr)}

    def export_config(self):
        return {"latent_dim": 3, "width": self.opts.width}


def test_export_config_lets_non_default_configs_load(register_spec, tmp_path):
    register_spec(zoo.ModelSpec(name="tiny-wide", task="generation", builder=build_tiny, recipe=WidthRecipe))
    run = run_training("tiny-wide", ["--out", str(tmp_path / "run"), "--epochs", "1", "--width", "5"])
    out, _ = export_run(run, tmp_path / "w.safetensors")
    assert json.loads(read_metadata(out)["zoo.config"]) == {"latent_dim": 3, "width": 5}
    model = zoo.load("tiny-wide", weights=out)
    assert model.net[0].out_features == 5


def test_export_of_a_non_run_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="holds no checkpoint.pt"):
        export_run(tmp_path, tmp_path / "x.safetensors")
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read checkpoint"):
        export_run(tmp_path, tmp_path / "x.safetensors")


def test_option_parsing(toy, tmp_path):
    opts, given = parse_options(toy, ["--epochs", "2", "--noise-scale", "0.5", "--no-resume", "--out", "o"])
    assert isinstance(opts, TinyOptions)
    assert (opts.epochs, opts.noise_scale, opts.resume, opts.batch_size, opts.out) == (2, 0.5, False, 4, "o")
    assert given == {"epochs": 2, "noise_scale": 0.5, "resume": False, "out": "o"}
    assert make_options(toy).out == str(Path("runs") / "tiny-gen")
    with pytest.raises(SystemExit) as exc:
        parse_options(toy, ["--bogus"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        parse_options(toy, ["--epochs", "two"])
    with pytest.raises(ConfigError, match="--batch-size must be >= 1, got 0"):
        parse_options(toy, ["--batch-size", "0"])
    with pytest.raises(ConfigError, match="--epochs must be >= 1"):
        run_training("tiny-gen", epochs=0, out=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="unknown training options for tiny-gen: colour; valid: "):
        make_options(toy, colour="red")


def test_untrainable_model_and_too_little_data(register_spec, toy, tmp_path):
    register_spec(zoo.ModelSpec(name="zz-untrainable", task="generation", builder=build_tiny))
    with pytest.raises(ConfigError, match="'zz-untrainable' has no training recipe"):
        run_training("zz-untrainable", ["--epochs", "1"])
    with pytest.raises(DataError, match="has 32 items, fewer than one batch"):
        _train(tmp_path / "run", "--batch-size", "64")


def test_a_failed_checkpoint_write_leaves_the_previous_one(toy, tmp_path, monkeypatch):
    run = _train(tmp_path / "run", "--epochs", "1")
    before = (run / "checkpoint.pt").read_bytes()
    real_atomic_write = ckpt_mod.atomic_write

    @contextlib.contextmanager
    def dies_half_way(path, mode="wb"):
        with real_atomic_write(path, mode) as f:
            class HalfWriter:
                def write(self, data):
                    data = bytes(data)
                    f.write(data[: len(data) // 2])
                    raise OSError("disk full (simulated)")
            yield HalfWriter()

    monkeypatch.setattr(ckpt_mod, "atomic_write", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        _train(run, "--epochs", "2", "--resume")
    assert (run / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(run)["epoch"] == 1
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.setattr(ckpt_mod, "atomic_write", real_atomic_write)
    _train(run, "--epochs", "2", "--resume")  # the lock was released and the run continues
    assert load_checkpoint(run)["epoch"] == 2
    assert [r["epoch"] for r in _losses(run)] == [1, 2]


def test_options_dataclass_fields_are_all_flags(toy):
    parser_flags = {a.dest for a in zoo.train.options_parser(toy)._actions if a.dest != "help"}
    assert parser_flags == {f.name for f in dataclasses.fields(TinyOptions)}


def test_python_api_resume_keeps_the_saved_options(toy, tmp_path):
    """run_training(name, resume=True, ...) continues with the run's own options, like `zoo train --resume`."""
    full, split = tmp_path / "full", tmp_path / "split"
    run_training("tiny-gen", out=str(full), epochs=2, lr=0.01, seed=3, noise_scale=0.5)
    run_training("tiny-gen", out=str(split), epochs=1, lr=0.01, seed=3, noise_scale=0.5)
    run_training("tiny-gen", out=str(split), epochs=2, resume=True)
    a, b = load_checkpoint(full), load_checkpoint(split)
    assert (b["options"]["lr"], b["options"]["seed"], b["options"]["noise_scale"]) == (0.01, 3, 0.5)
    _same(a["modules"], b["modules"])
    _same(a["optimizers"], b["optimizers"])


def test_loader_workers_do_not_change_the_result(toy, tmp_path):
    _train(tmp_path / "a", "--epochs", "1")
    _train(tmp_path / "b", "--epochs", "1", "--num-workers", "2")
    _same(load_checkpoint(tmp_path / "a")["modules"], load_checkpoint(tmp_path / "b")["modules"])


def _mean_sample(model) -> dict:
    """A stand-in evaluation: one number that depends on every weight, and on the model being in eval mode."""
    assert not model.training
    return {"mean": float(model.sample(8, seed=0).mean()), "draws_rng": float(torch.rand(()))}


def test_eval_every_scores_the_export_and_leaves_training_untouched(register_spec, tmp_path):
    register_spec(tiny_spec("tiny-eval", evaluate=_mean_sample))
    run = run_training("tiny-eval", ["--out", str(tmp_path / "run"), "--epochs", "3", "--eval-every", "2"])
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert ["scores" in r for r in records] == [False, True, True]  # every 2nd epoch and after the last
    out, _ = export_run(run, tmp_path / "g.safetensors")
    with torch.no_grad():
        assert records[2]["scores"]["mean"] == _mean_sample(zoo.load("tiny-eval", weights=out))["mean"]
    # the evaluation (which even draws from the global RNG) does not change what is trained
    plain = run_training("tiny-eval", ["--out", str(tmp_path / "plain"), "--epochs", "3"])
    _same(load_checkpoint(run)["modules"], load_checkpoint(plain)["modules"])


def _failing_evaluation(model) -> dict:
    raise RuntimeError("evaluation broke")


def test_failing_evaluation_loses_no_training(register_spec, tmp_path):
    register_spec(tiny_spec("tiny-eval-fails", evaluate=_failing_evaluation))
    with pytest.raises(RuntimeError, match="evaluation broke"):
        run_training("tiny-eval-fails", ["--out", str(tmp_path / "run"), "--epochs", "3", "--eval-every", "2"])
    assert load_checkpoint(tmp_path / "run")["epoch"] == 2  # the evaluated epoch's checkpoint was saved first
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and "scores" not in records[1] and "loss" in records[1]


def test_eval_every_needs_an_evaluation(toy, tmp_path):
    with pytest.raises(ConfigError, match="--eval-every: model 'tiny-gen' has no evaluation"):
        _train(tmp_path / "run", "--epochs", "1", "--eval-every", "1")
    assert not (tmp_path / "run").exists()
