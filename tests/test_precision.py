"""``precision: auto``: the rules of twin/model/precision.py, and a real run that records its choice."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from helpers.training import tiny_train_config

from twin.model.precision import Hardware, choose_precision, decide, model_width, parameter_count


def _gib_blind(text: str) -> str:
    """``text`` with its GiB figures blanked: the free memory in a precision reason moves between two
    readings (a fresh-clone CI run saw 22.0 and 21.8 GiB)."""
    return re.sub(r"\d+(?:\.\d+)? GiB", "N GiB", " ".join(text.split()))


GIB = 2**30
SEVEN_B = 7_200_000_000


@pytest.mark.parametrize(
    ("hw", "devices", "want", "slow"),
    [
        (Hardware(cuda=True, cuda_bf16=True, cuda_name="A100"), 1, "bf16-true", False),
        (Hardware(cuda=True, cuda_bf16=False, cuda_name="T4"), 1, "16-true", False),
        (Hardware(cuda=False, cpu_bf16=True, available_bytes=8 * GIB), 1, "bf16-true", False),
        # 7.2B x 4 bytes x 1.2 + 1 GiB = 33.2 GiB
        (Hardware(cuda=False, available_bytes=34 * GIB), 1, "32-true", False),
        (Hardware(cuda=False, available_bytes=33 * GIB), 1, "bf16-true", True),
        (Hardware(cuda=False, available_bytes=34 * GIB), 2, "bf16-true", True),  # one copy per process
        (Hardware(cuda=False, available_bytes=None), 1, "32-true", False),  # unknown RAM: float32
    ],
)
def test_rules(hw: Hardware, devices: int, want: str, slow: bool) -> None:
    choice = decide(hw, SEVEN_B, devices)
    assert (choice.precision, choice.slow) == (want, slow), choice
    assert choice.reason and "\n" not in choice.reason
    if slow:
        assert "slow" in choice.reason and "GiB available" in choice.reason


@pytest.mark.parametrize(
    ("width", "available", "want"),
    [
        (128, 8 * GIB, "32-true"),  # the tiny bases: float32 kernels are faster at this width
        (511, 8 * GIB, "32-true"),
        (512, 8 * GIB, "bf16-true"),
        (4544, 64 * GIB, "bf16-true"),  # Falcon-7B: bf16 even when float32 would fit
        (None, 8 * GIB, "bf16-true"),  # width unknown: the native-bf16 rule
        (128, 1 * GIB, "bf16-true"),  # narrow but float32 does not fit (1 GiB reserve + weights)
    ],
)
def test_native_bf16_cpus_keep_narrow_models_in_float32(width: int | None, available: int, want: str) -> None:
    hw = Hardware(cuda=False, cpu_bf16=True, available_bytes=available)
    choice = decide(hw, 800_000 if width and width < 512 else SEVEN_B, 1, width)
    assert choice.precision == want, choice
    assert not choice.slow
    if want == "32-true":
        assert f"hidden size {width}" in choice.reason


def test_model_width_reads_the_config(tiny_base: Path, tmp_path: Path) -> None:
    import json

    assert model_width(tiny_base) == json.loads((tiny_base / "config.json").read_text())["hidden_size"]
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"hidden_size": 2048}}))
    assert model_width(tmp_path) == 2048
    (tmp_path / "config.json").write_text("{not json")
    assert model_width(tmp_path) is None


def test_parameter_count_from_headers_matches_the_model(tiny_base: Path) -> None:
    from twin.model.load import load_base

    model, _ = load_base(tiny_base)
    # Tied input/output embeddings are stored once and counted once by parameters().
    assert parameter_count(tiny_base) == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_train_with_auto_records_the_choice(
    tiny_base: Path, processed_dir: Path, tmp_path: Path, caplog
) -> None:
    import torch
    from safetensors.torch import load_file

    from twin.adapter_meta import read_meta
    from twin.train.loop import train

    caplog.set_level(logging.INFO, logger="twin.train")
    cfg = tiny_train_config(tiny_base, processed_dir, tmp_path, run="auto", max_steps=1, precision="auto")
    train(cfg)
    want = choose_precision(tiny_base)
    meta = read_meta(tmp_path / "adapters" / "auto")
    assert meta.precision["precision"] == want.precision
    assert _gib_blind(meta.precision["reason"]) == _gib_blind(f"auto: {want.reason}")
    assert meta.train["precision"] == want.precision
    assert f"precision auto -> {want.precision}" in caplog.text
    weights = load_file(tmp_path / "adapters" / "auto" / "adapter_model.safetensors")
    dtype = {"bf16-true": torch.bfloat16, "32-true": torch.float32}[want.precision]
    assert all(w.dtype == dtype for w in weights.values())


@pytest.mark.slow
def test_serve_dtype_auto_logs_its_choice(tiny_base: Path, tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_file = tmp_path / "serve.log"
    cmd = [
        sys.executable,
        "-m",
        "twin.cli",
        "serve",
        "--base",
        str(tiny_base),
        "--port",
        str(port),
        "--threads",
        "1",
    ]
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "TWIN_API_TOKEN": ""}
        )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            assert proc.poll() is None, log_file.read_text()[-2000:]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    want = choose_precision(tiny_base)
    assert _gib_blind(f"--dtype auto -> {want.dtype}: {want.reason}") in _gib_blind(log_file.read_text())
