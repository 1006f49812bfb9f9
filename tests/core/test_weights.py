"""Weight files: reproducible safetensors + sha sidecar, verified reads, weights_only .pth, package/cache/URL."""
from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

import zoo
from zoo.errors import WeightsError
from zoo.paths import weights_cache
from zoo.weights import read_metadata, read_state_dict, resolve, save_weights, sha256_file

from .toy import tiny_spec


class Smuggled:
    """A custom class: pickling it into a .pth must not get it loaded (weights_only=True)."""

    def __init__(self) -> None:
        self.payload = "arbitrary code could run here"


def _state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"b.weight": torch.randn(3, 2, generator=g), "a.bias": torch.randn(3, generator=g),
            "steps": torch.tensor(7)}


def test_save_weights_writes_sha_sidecar_and_reproducible_bytes(tmp_path):
    state = _state()
    sha = save_weights(tmp_path / "w.safetensors", state, {"zoo.model": "m", "k": 1})
    assert sha == sha256_file(tmp_path / "w.safetensors")
    assert (tmp_path / "w.safetensors.sha256").read_text() == f"{sha}  w.safetensors\n"
    # same content in another key order, another metadata order -> the same bytes
    reordered = dict(reversed(list(state.items())))
    sha2 = save_weights(tmp_path / "w2.safetensors", reordered, {"k": 1, "zoo.model": "m"})
    assert sha2 == sha
    assert (tmp_path / "w.safetensors").read_bytes() == (tmp_path / "w2.safetensors").read_bytes()
    back = read_state_dict(tmp_path / "w.safetensors", sha256=sha)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    assert read_metadata(tmp_path / "w.safetensors") == {"zoo.model": "m", "k": "1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "w.safetensors", "w.safetensors.sha256", "w2.safetensors", "w2.safetensors.sha256"]  # no temp files


def test_metadata_order_does_not_change_the_bytes(tmp_path):
    """safetensors writes metadata in (random) hash-map order; save_weights must still be reproducible."""
    meta = {f"zoo.key{i}": f"value {i} é" for i in range(8)}
    digests = {save_weights(tmp_path / "m.safetensors", _state(), dict(reversed(list(meta.items())) if i % 2
                                                                       else meta.items())) for i in range(20)}
    assert len(digests) == 1
    assert list(read_metadata(tmp_path / "m.safetensors")) == sorted(meta)
    assert read_metadata(tmp_path / "m.safetensors") == meta
    back = read_state_dict(tmp_path / "m.safetensors", sha256=digests.pop())
    assert all(torch.equal(back[k], v) for k, v in _state().items())
    header_len = int.from_bytes((tmp_path / "m.safetensors").read_bytes()[:8], "little")
    assert header_len % 8 == 0  # the rewritten header keeps safetensors' 8-byte alignment


def test_empty_state_dicts_round_trip(tmp_path):
    """Parameter-free modules have empty state dicts; their files must still be readable."""
    for meta in (None, {}, {"zoo.model": "identity"}):
        sha = save_weights(tmp_path / "e.safetensors", {}, meta)
        assert read_state_dict(tmp_path / "e.safetensors", sha256=sha) == {}
        assert read_metadata(tmp_path / "e.safetensors") == (meta or {})


def test_sha_mismatch_names_file_and_both_hashes(tmp_path):
    path = tmp_path / "w.safetensors"
    good = save_weights(path, _state(0))
    other = save_weights(tmp_path / "x.safetensors", _state(1))
    with pytest.raises(WeightsError) as exc:
        read_state_dict(path, sha256=other)
    msg = str(exc.value)
    assert str(path) in msg and good in msg and other in msg


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "w.safetensors"
    sha = save_weights(path, _state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 10])
    truncated_sha = hashlib.sha256(data[: len(data) - 10]).hexdigest()
    with pytest.raises(WeightsError) as exc:
        read_state_dict(path, sha256=sha)
    assert str(path) in str(exc.value) and sha in str(exc.value) and truncated_sha in str(exc.value)
    with pytest.raises(WeightsError, match="is not a readable safetensors file"):
        read_state_dict(path)  # without an expected hash the reader itself refuses it
    path.write_bytes(data[:5])
    with pytest.raises(WeightsError, match=str(path)):
        read_state_dict(path)


def test_pth_is_read_with_weights_only(tmp_path):
    state = _state()
    torch.save(state, tmp_path / "ok.pth")
    back = read_state_dict(tmp_path / "ok.pth")
    assert all(torch.equal(back[k], state[k]) for k in state)
    torch.save({"w": torch.ones(1), "evil": Smuggled()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match=r"weights_only=True"):
        read_state_dict(tmp_path / "evil.pth")
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    with pytest.raises(WeightsError, match="expected a state dict"):
        read_state_dict(tmp_path / "tensor.pt")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        read_state_dict(tmp_path / "nope.safetensors")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"expected \.safetensors or \.pth"):
        read_state_dict(tmp_path / "w.npz")


def test_resolve_prefers_package_data(tmp_path, monkeypatch):
    pkg = tmp_path / "zz_weights_pkg"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    sha = save_weights(pkg / "weights" / "p.safetensors", _state())
    monkeypatch.syspath_prepend(str(tmp_path))
    wf = zoo.WeightsFile("p.safetensors", sha, package="zz_weights_pkg", url="http://127.0.0.1:9/never")
    assert resolve(wf) == pkg / "weights" / "p.safetensors"
    missing = zoo.WeightsFile("q.safetensors", sha, package="zz_weights_pkg")
    with pytest.raises(WeightsError, match="not in package 'zz_weights_pkg'"):
        resolve(missing)


def test_resolve_uses_cache_under_hash_bearing_name(tmp_path):
    sha = save_weights(tmp_path / "c.safetensors", _state())
    wf = zoo.WeightsFile("c.safetensors", sha, url="http://127.0.0.1:9/unreachable")  # port 9: nothing listens
    cached = weights_cache() / f"c-{sha[:12]}.safetensors"
    cached.parent.mkdir(parents=True)
    cached.write_bytes((tmp_path / "c.safetensors").read_bytes())
    assert resolve(wf) == cached
    assert str(weights_cache()).startswith(str(zoo.paths.zoo_home()))


class _Server:
    """A real HTTP server on 127.0.0.1 serving a folder, counting requests."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        self.folder = folder
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def do_GET(self):  # noqa: N802
                outer.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "srv"
    folder.mkdir()
    sha = save_weights(folder / "d.safetensors", _state())
    with _Server(folder) as server:
        yield server, sha


def test_download_into_cache_atomically_and_once(served):
    server, sha = served
    wf = zoo.WeightsFile("d.safetensors", sha, url=f"{server.url}/d.safetensors")
    path = resolve(wf)
    assert path == weights_cache() / f"d-{sha[:12]}.safetensors"
    assert sha256_file(path) == sha
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
    assert resolve(wf) == path and server.requests == ["/d.safetensors"]  # second resolve: from the cache
    model_state = zoo.weights.load_weights_file(wf)
    assert torch.equal(model_state["b.weight"], _state()["b.weight"])


def test_zoo_load_downloads_a_url_spec(served, register_spec):
    server, _ = served
    module_state = {"net.0.weight": torch.ones(8, 3), "net.0.bias": torch.zeros(8),
                    "net.2.weight": torch.full((16, 8), 0.5), "net.2.bias": torch.zeros(16)}
    save_weights(Path(server.folder) / "tiny.safetensors", module_state)
    tiny_sha = sha256_file(Path(server.folder) / "tiny.safetensors")
    register_spec(tiny_spec("zz-remote-tiny", weights=zoo.WeightsFile("tiny.safetensors", tiny_sha,
                                                                       url=f"{server.url}/tiny.safetensors")))
    assert zoo.model_card("zz-remote-tiny")["weights"]["size"] is None  # not downloaded yet
    model = zoo.load("zz-remote-tiny")
    assert torch.equal(model.net[2].weight, torch.full((16, 8), 0.5))
    assert zoo.model_card("zz-remote-tiny")["weights"]["size"] == (Path(server.folder) / "tiny.safetensors").stat(
        ).st_size
    zoo.load("zz-remote-tiny")
    assert server.requests == ["/tiny.safetensors"]


def test_wrong_sha_download_leaves_nothing_in_cache(served):
    server, sha = served
    wrong = "f" * 64
    wf = zoo.WeightsFile("d.safetensors", wrong, url=f"{server.url}/d.safetensors")
    with pytest.raises(WeightsError) as exc:
        resolve(wf)
    assert sha in str(exc.value) and wrong in str(exc.value) and "d.safetensors" in str(exc.value)
    cache = weights_cache()
    assert not cache.exists() or list(cache.iterdir()) == []
    assert server.requests == ["/d.safetensors"]


def test_download_errors(served):
    server, sha = served
    wf = zoo.WeightsFile("gone.safetensors", sha, url=f"{server.url}/gone.safetensors")
    with pytest.raises(WeightsError, match="cannot download weights from .*gone.safetensors.*404"):
        resolve(wf)
    with pytest.raises(WeightsError, match="downloading is off"):
        resolve(zoo.WeightsFile("d.safetensors", sha, url=f"{server.url}/d.safetensors"), download=False)
    assert server.requests == ["/gone.safetensors"]
    cache = weights_cache()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_truncated_download_is_refused_and_not_cached(tmp_path):
    """A server that drops the connection half-way: the partial file fails the sha check and is not kept."""
    data = (tmp_path / "full.bin")
    sha = save_weights(data, _state())
    payload = data.read_bytes()

    class Dropping(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Dropping)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/w.safetensors"
        with pytest.raises(WeightsError, match=f"expected {sha}"):
            resolve(zoo.WeightsFile("w.safetensors", sha, url=url))
    finally:
        httpd.shutdown()
        httpd.server_close()
    cache = weights_cache()
    assert not cache.exists() or list(cache.iterdir()) == []
