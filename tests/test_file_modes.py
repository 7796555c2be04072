"""What twin writes is private on purpose (twin/fileio.py), whatever the umask it was started with."""

from __future__ import annotations

import os
import stat

import pytest

from twin.fileio import atomic_write_text, private_dir, replace_path


@pytest.fixture()
def open_umask():
    old = os.umask(0o022)  # a usual login umask: files 0644, directories 0755 unless twin says otherwise
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_atomic_files_and_new_directories_are_owner_only(tmp_path, open_umask):
    atomic_write_text(tmp_path / "a" / "b" / "stats.json", "{}")
    assert _mode(tmp_path / "a" / "b" / "stats.json") == 0o600
    assert _mode(tmp_path / "a") == 0o700 and _mode(tmp_path / "a" / "b") == 0o700
    assert private_dir(tmp_path / "c" / "d") == tmp_path / "c" / "d" and _mode(tmp_path / "c") == 0o700


def test_a_directory_swapped_in_is_owner_only_throughout(tmp_path, open_umask):
    # an adapter / merged model / GGUF built by libraries that write with the process umask
    build = tmp_path / ".adapter.tmp"
    (build / "memory").mkdir(parents=True)
    (build / "adapter_model.safetensors").write_bytes(b"x")
    (build / "memory" / "pairs.jsonl").write_text("{}\n")
    assert _mode(build / "adapter_model.safetensors") == 0o644
    replace_path(build, tmp_path / "adapter")
    out = tmp_path / "adapter"
    assert _mode(out) == 0o700 and _mode(out / "memory") == 0o700
    assert (
        _mode(out / "adapter_model.safetensors") == 0o600 and _mode(out / "memory" / "pairs.jsonl") == 0o600
    )
    single = tmp_path / ".model.gguf.tmp"
    single.write_bytes(b"GGUF")
    replace_path(single, tmp_path / "model.gguf")
    assert _mode(tmp_path / "model.gguf") == 0o600
