"""Translation task and `zoo translate`: exact output size for any input size, alpha kept aside, channel
conversion, folder batches, one-way reference generators, float32 on CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.cli.main import main
from zoo.errors import ConfigError, DataError
from zoo.imageio import read_image
from zoo.tasks.translation import prepare, translate_file, translate_image, translate_tensor
from zoo.weights import save_weights
from zoo_cyclegan.models import CycleGANGenerator, CycleGANPair


@pytest.fixture
def pair() -> CycleGANPair:
    torch.manual_seed(0)
    return prepare(CycleGANPair(1, 3, ngf=4, n_blocks=1), "cpu")


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (13, 7), (16, 16), (33, 20)])
def test_output_has_exactly_the_input_size(pair, size):
    x = torch.rand(2, 1, *size) * 2 - 1
    y = translate_tensor(pair, x, "AtoB")
    assert y.shape == (2, 3, *size) and y.dtype == torch.float32
    assert y.min() >= -1 and y.max() <= 1
    back = translate_tensor(pair, y, "BtoA")
    assert back.shape == (2, 1, *size)


def test_multiple_of_four_input_is_not_padded(pair):
    x = torch.rand(1, 1, 16, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(translate_tensor(pair, x), pair(x).clamp(-1, 1))


def test_wrong_channel_count_is_a_data_error(pair):
    with pytest.raises(DataError, match=r"\(N, 1, H, W\)"):
        translate_tensor(pair, torch.zeros(1, 3, 8, 8), "AtoB")
    with pytest.raises(ConfigError, match="direction"):
        translate_tensor(pair, torch.zeros(1, 1, 8, 8), "left")


def test_image_channels_are_converted(pair):
    rgb = torch.rand(3, 10, 9)
    out = translate_image(pair, rgb, "AtoB")  # colour in, model takes grey
    assert out.shape == (3, 10, 9) and 0 <= out.min() and out.max() <= 1
    assert translate_image(pair, torch.rand(1, 10, 9), "BtoA").shape == (1, 10, 9)  # grey in, model takes RGB


def test_alpha_is_kept_aside_and_reattached(pair, tmp_path):
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (11, 14, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    translate_file(pair, tmp_path / "in.png", tmp_path / "out.png", "AtoB")
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (11, 14, 4)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])


def test_palette_input(pair, tmp_path):
    img = Image.fromarray(np.arange(63 * 2, dtype=np.uint8).reshape(9, 14)).convert("P")
    img.save(tmp_path / "p.png")
    translate_file(pair, tmp_path / "p.png", tmp_path / "o.png", "AtoB")
    image, alpha, _ = read_image(tmp_path / "o.png")
    assert image.shape == (3, 9, 14) and alpha is None


def _pair_weights(tmp_path, pair: CycleGANPair):
    path = tmp_path / "pair.safetensors"
    save_weights(path, pair.state_dict(), {"zoo.model": "cyclegan-digits"})
    return path


def test_cli_translates_a_file_and_a_folder(pair, tmp_path, capsys):
    weights = _pair_weights(tmp_path, pair)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((10, 6), 200, np.uint8), "L").save(src / "a.png")
    Image.fromarray(np.zeros((7, 9, 3), np.uint8), "RGB").save(src / "b.jpg")
    assert main(["translate", "cyclegan-digits", "--weights", str(weights), str(src / "a.png"),
                 "-o", str(tmp_path / "a_out.png")]) == 0
    out, _, _ = read_image(tmp_path / "a_out.png")
    expected = translate_image(pair, read_image(src / "a.png")[0], "AtoB")
    assert out.shape == (3, 10, 6)
    torch.testing.assert_close(out, (expected * 255).round() / 255, atol=1 / 255 + 1e-6, rtol=0)
    assert main(["translate", "cyclegan-digits", "--weights", str(weights), "--direction", "BtoA", str(src),
                 "-o", str(tmp_path / "outdir")]) == 0
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["a.png", "b.png"]
    assert read_image(tmp_path / "outdir" / "b.png")[0].shape == (1, 7, 9)


def test_cli_reports_bad_input_as_one_line(pair, tmp_path, capsys):
    weights = _pair_weights(tmp_path, pair)
    code = main(["translate", "cyclegan-digits", "--weights", str(weights), str(tmp_path / "missing.png"),
                 "-o", str(tmp_path / "o.png")])
    assert code == 2
    assert "missing.png" in capsys.readouterr().err


def test_cli_one_way_reference_generator_follows_direction(tmp_path):
    torch.manual_seed(0)
    g = CycleGANGenerator(3, 3, ngf=4, n_blocks=1)
    torch.save(g.state_dict(), tmp_path / "latest_net_G_B.pth")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8), "RGB").save(tmp_path / "x.png")
    assert main(["translate", "cyclegan", "--weights", str(tmp_path / "latest_net_G_B.pth"), "--direction", "BtoA",
                 str(tmp_path / "x.png"), "-o", str(tmp_path / "y.png")]) == 0
    assert read_image(tmp_path / "y.png")[0].shape == (3, 8, 8)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_translation_matches_cpu(pair):
    x = torch.rand(2, 1, 13, 21) * 2 - 1
    expected = translate_tensor(pair, x, "AtoB")
    on_gpu = prepare(CycleGANPair(1, 3, ngf=4, n_blocks=1), None)
    on_gpu.load_state_dict(pair.state_dict())
    assert next(on_gpu.parameters()).device.type == "cuda"  # chosen automatically
    torch.testing.assert_close(translate_tensor(on_gpu, x, "AtoB").cpu(), expected, atol=1e-4, rtol=1e-3)
