"""What `twin train` does before its first step to start sooner: new data tokenized in a second process
while torch imports, and transformers' index of its model files kept between runs (twin/imports.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers.training import tiny_train_config


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the helper runs only with a second core")
def test_new_data_is_tokenized_by_a_helper_process_to_the_same_ids(
    tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    from twin.examples import encode_examples, read_examples
    from twin.model.load import load_tokenizer
    from twin.prompt import resolve_template
    from twin.train import encode_ahead
    from twin.train.data import encode_cached

    data = tmp_path / "data"
    shutil.copytree(processed_dir, data, ignore=shutil.ignore_patterns(".twin-cache"))
    cfg = tiny_train_config(tiny_base, data, tmp_path / "out")
    proc = encode_ahead.start(cfg)
    assert proc is not None
    encode_ahead.wait()
    assert proc.returncode == 0
    assert encode_ahead.start(cfg) is None  # cached now: no second helper
    # The cache holds what the trainer would have encoded itself (a hit needs no tokenizer).
    tok = load_tokenizer(tiny_base)
    template, d = resolve_template(cfg.data.template, tok), cfg.data
    for split in (d.train_file, d.val_file):
        rows = read_examples(data / split)
        want = encode_examples(rows, tok, template, d.max_seq_length, reply_tokens=d.reply_tokens)
        got = encode_cached(rows, data / split, tiny_base, None, template, d.max_seq_length, d.reply_tokens)
        assert (got.ids, got.prompt_lens, got.stats) == (want.ids, want.prompt_lens, want.stats)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the helper runs only with a second core")
def test_waiting_for_the_helper_shows_how_far_it_is(
    tiny_base: Path, processed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer waiting on the helper showed one line and then nothing until it was done (~11 s on a
    90,000-message account): now a bar per file, fed by the helper's chunk reports."""
    import tqdm.auto

    from twin.examples import read_examples
    from twin.train import encode_ahead

    bars: list[tuple[str, int, list[int]]] = []
    still_open: list[Bar] = []

    class Bar:
        def __init__(self, *, total: int, desc: str, **_: object) -> None:
            assert not still_open  # one bar at a time: a second open one is drawn nested, below it
            self.n, self.seen = 0, []
            bars.append((desc, total, self.seen))
            still_open.append(self)

        def update(self, k: int) -> None:
            self.n += k
            self.seen.append(self.n)

        def close(self) -> None:
            if self in still_open:
                still_open.remove(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    data = tmp_path / "data"
    shutil.copytree(processed_dir, data, ignore=shutil.ignore_patterns(".twin-cache"))
    cfg = tiny_train_config(tiny_base, data, tmp_path / "out")
    assert encode_ahead.start(cfg) is not None
    encode_ahead.wait()  # at once: the helper is still importing
    n_train = len(read_examples(data / cfg.data.train_file))
    n_val = len(read_examples(data / cfg.data.val_file))
    assert [(desc, total, seen[-1]) for desc, total, seen in bars] == [
        ("tokenizing train.jsonl", n_train, n_train),
        ("tokenizing val.jsonl", n_val, n_val),
    ]


def test_no_helper_when_the_examples_carry_memory(
    tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    from twin.train import encode_ahead

    cfg = tiny_train_config(tiny_base, processed_dir, tmp_path / "out", data={"memory": 2})
    assert encode_ahead.start(cfg) is None  # memory-encoded examples are per run, never cached


def _write_model_file(path: Path, names: list[str], mtime_ns: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"__all__ = {names!r}\n", encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_transformers_index_is_read_back_until_a_model_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect

    from transformers.utils import import_utils

    from twin.imports import _cached_index, index_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    own = inspect.unwrap(import_utils.define_import_structure)  # transformers' scan, which caches per path

    def scan(path: str, prefix: str | None = None) -> dict:
        import_utils.create_import_structure_from_path.cache_clear()  # read the files as they are now
        return own(path, prefix=prefix)

    models = tmp_path / "transformers" / "models"
    _write_model_file(models / "__init__.py", [], 10**18)
    _write_model_file(models / "foo" / "__init__.py", [], 10**18)
    _write_model_file(models / "foo" / "modeling_foo.py", ["FooModel"], 10**18)
    _write_model_file(models / "foo" / "configuration_foo.py", ["FooConfig"], 10**18)
    calls: list[str] = []

    def counted(path: str, prefix: str | None = None) -> dict:
        calls.append(path)
        return scan(path, prefix=prefix)

    cached = _cached_index(counted)
    # the two ways transformers scans the whole directory: from its __init__, and from models/__init__.py
    ways = [(str(models), "models"), (str(models / "__init__.py"), None)]
    first = [cached(path, prefix=prefix) for path, prefix in ways]
    assert first == [scan(path, prefix=prefix) for path, prefix in ways]
    assert index_file().is_file() and len(calls) == 2
    assert [cached(path, prefix=prefix) for path, prefix in ways] == first and len(calls) == 2  # read back
    assert cached(str(models / "foo" / "__init__.py")) == scan(str(models / "foo" / "__init__.py"))
    assert len(calls) == 3  # a single model's package: transformers' own scan
    _write_model_file(models / "foo" / "modeling_foo.py", ["FooModel", "FooForCausalLM"], 10**18 + 1)
    changed = _cached_index(counted)(str(models), prefix="models")  # the next process
    assert len(calls) == 4
    assert changed == scan(str(models), prefix="models") != first[0]
    assert "FooForCausalLM" in str(changed)
