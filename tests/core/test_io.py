"""atomic_write and the cache location."""
from __future__ import annotations

import os
import stat

import pytest

from zoo.io import atomic_write
from zoo.paths import weights_cache, zoo_home


def test_atomic_write_replaces_in_one_step(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    with atomic_write(target, "w") as f:
        f.write("first")
        assert not target.exists()  # nothing visible until the context closes
    assert target.read_text() == "first"
    with atomic_write(target) as f:
        f.write(b"second")
        assert target.read_text() == "first"
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]


def test_atomic_write_error_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as f:
            f.write(b"partial new content")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_atomic_write_mode_and_permissions(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "p.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    # like a plain open(): 0666 minus the umask, not the 0600 of the temp file
    assert stat.S_IMODE((tmp_path / "p.txt").stat().st_mode) == 0o640


def test_zoo_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zh"))
    assert zoo_home() == tmp_path / "zh" and weights_cache() == tmp_path / "zh" / "weights"
    monkeypatch.delenv("ZOO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo_home() == tmp_path / "xdg" / "zoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert zoo_home() == tmp_path / "home" / ".cache" / "zoo"
