"""The `twin train` and `twin model` commands (the 2-process DDP run: tests/test_train_ddp.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.errors import TwinError

REPO = Path(__file__).resolve().parents[1]
TWIN = [sys.executable, "-m", "twin.cli"]


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_WAIT_POLICY="PASSIVE", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    return env


# The 2-process DDP run from the CLI is in tests/test_train_ddp.py (it also checks the loss weighting).


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora:\n  rank: 8\n")
    proc = subprocess.run(
        [*TWIN, "train", "--config", str(bad)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unknown key 'lora.rank'" in lines[0]


def test_missing_data_from_cli_is_one_line(tiny_base: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*TWIN, "train", "--config", str(REPO / "pipelines" / "tiny.yaml"), "--base", str(tiny_base),
         "--data", str(tmp_path / "nothing")],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'nothing'}: data directory not found; run `twin prepare` first (or pass --data DIR)"
    ]


def test_an_empty_val_set_is_said_in_words_not_none(tiny_base: Path, tmp_path: Path) -> None:
    """All replies in one session leave val.jsonl empty: the run says so, not 'val loss None'."""
    from helpers.training import write_processed

    data = write_processed(tmp_path / "processed", n_train=8, n_val=1)
    (data / "val.jsonl").write_text("")
    proc = subprocess.run(
        [*TWIN, "train", "--config", str(REPO / "pipelines" / "tiny.yaml"), "--base", str(tiny_base),
         "--data", str(data), "--run", "noval", "--max-steps", "2", "--set", f"out_dir={tmp_path}"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "None" not in out
    assert "no val loss: val.jsonl is empty" in proc.stdout
    assert "noval; no val loss" in " ".join(out.split())  # the adapter's log line, unwrapped


def test_model_tiny_command_uses_chat_text(processed_dir: Path, tmp_path: Path) -> None:
    from twin.cli import app
    from twin.model.load import load_base

    out = tmp_path / "tiny"
    args = ["model", "tiny", "--out", str(out), "--texts", str(processed_dir), "--pretrain-steps", "3"]
    args += ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--vocab-size", "400"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model, tok = load_base(out)
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 1
    info = json.loads((out / "tiny.json").read_text())
    from twin.model.tiny import texts_from_dir

    # the contacts' side of these chats, as `twin model tiny` reads it by default
    assert info["pretrain_steps"] == 3 and info["documents"] == len(texts_from_dir(processed_dir)) > 48
    # The tokenizer was trained on the contacts' side of these chats (with your replies it would differ).
    from twin.model.tiny import train_tokenizer

    want = train_tokenizer(texts_from_dir(processed_dir), 400, tok.model_max_length)
    assert tok.get_vocab() == want.get_vocab()
    builtin = train_tokenizer(texts_from_dir(processed_dir, owner_replies=True), 400, tok.model_max_length)
    assert tok.get_vocab() != builtin.get_vocab()  # the check can tell corpora apart


def test_model_tiny_missing_texts_dir(tmp_path: Path) -> None:
    from twin.cli import app

    result = CliRunner().invoke(
        app, ["model", "tiny", "--out", str(tmp_path / "t"), "--texts", str(tmp_path / "x")]
    )
    assert isinstance(result.exception, TwinError) and "not found" in str(result.exception)


def test_download_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from twin.cli import app

    # conftest sets HF_HUB_OFFLINE=1: the hub is never contacted.
    result = CliRunner().invoke(app, ["model", "download", "tiiuae/falcon-7b", "--out", str(tmp_path / "m")])
    assert isinstance(result.exception, TwinError)
    assert "HF_HUB_OFFLINE" in str(result.exception) and "copy" in str(result.exception)
    assert not (tmp_path / "m").exists()

    import huggingface_hub

    def no_network(self, *a, **k):
        raise ConnectionError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", no_network)
    result = CliRunner().invoke(app, ["model", "download", "tiiuae/falcon-7b", "--out", str(tmp_path / "m")])
    assert isinstance(result.exception, TwinError)
    assert "no connection to the Hub" in str(result.exception) and "Network is unreachable" in str(
        result.exception
    )
    result = CliRunner().invoke(app, ["model", "download", "not a repo"])
    assert isinstance(result.exception, TwinError) and "not a Hub repo id" in str(result.exception)


def test_download_success_path_keeps_safetensors_only(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub calls are replaced by a local copy: what twin asks for and what it checks after."""
    import shutil

    import huggingface_hub

    from twin.model.download import download

    seen: dict = {}
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "list_repo_files",
        lambda self, repo, revision=None: ["model.safetensors", "x.bin"],
    )

    def fake_snapshot(repo_id, *, revision=None, local_dir, ignore_patterns):
        seen.update(repo=repo_id, ignore=ignore_patterns)
        shutil.copytree(tiny_base, local_dir)
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    out = download("tiiuae/falcon-7b", tmp_path / "falcon")
    assert out == tmp_path / "falcon" and (out / "config.json").is_file()
    assert seen["repo"] == "tiiuae/falcon-7b" and "*.bin" in seen["ignore"] and "*.gguf" in seen["ignore"]
