"""Shared fixtures: a tiny Falcon base and a LoRA adapter trained on it (built once per session).

Both are real models (FalconForCausalLM with Falcon-7B's architecture at toy size, a locally
trained byte-level BPE tokenizer), built in seconds on CPU; nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.training import tiny_train_config, write_processed

# The test machine has 2 cores shared with other jobs: more threads than cores only thrashes, and
# OpenMP's default spin-waiting makes 2 threads ~10x slower than 1 when the other core is busy;
# passive waiting removes that cliff (it must be set before torch is imported).
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


# The fast lane (`make test-fast`, `-m "not slow"`) is everything that neither trains nor serves
# nor spawns processes. A test is slow when it says so (`@pytest.mark.slow`, or a module-level
# `pytestmark`) or when it uses a fixture that trains a model or starts a server: pytest resolves the
# whole fixture closure, so a module fixture built on `tiny_adapter` makes its tests slow as well, and
# new tests land in the right lane without a marker of their own.
SLOW_FIXTURES = frozenset({"tiny_adapter", "engine", "twin_server"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _modest_threads() -> None:
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a freshly built tiny Falcon (no pretraining): config, safetensors, tokenizer."""
    _modest_threads()
    from twin.model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny-base") / "tiny-falcon", seed=0)


@pytest.fixture(scope="session")
def processed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic ``data/processed`` (96 train / 16 val examples + stats.json)."""
    return write_processed(tmp_path_factory.mktemp("processed"))


@pytest.fixture(scope="session")
def tiny_adapter(tiny_base: Path, processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a LoRA adapter dir (PEFT files + tokenizer + twin.json) trained a few steps on tiny_base."""
    _modest_threads()
    from twin.train.loop import train

    out = tmp_path_factory.mktemp("train")
    # a plain LoRA (no embedding rows, unlike pipelines/tiny.yaml): the serving tests check the stacked
    # per-row path, which adapters with embedding rows leave to peft (tests/test_train_embeddings.py)
    lora = {"train_embeddings": False}
    train(
        tiny_train_config(
            tiny_base, processed_dir, out, run="fixture", max_steps=12, optim={"lr": 1e-2}, lora=lora
        )
    )
    return out / "adapters" / "fixture"


@pytest.fixture(scope="session")
def random_lora_adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter dir on tiny_base with random, non-zero B (untrained, hence instant)."""
    from devkit.adapters import write_random_lora

    return write_random_lora(tiny_base, tmp_path_factory.mktemp("adapter") / "random-lora")


@pytest.fixture(scope="session")
def engine(tiny_base: Path, tiny_adapter: Path, tmp_path_factory: pytest.TempPathFactory):
    """One in-process serving engine with two real adapters, `twin` and `other` (plus the bare base).

    Loading is the slow part, so the API and batching tests share it; test_web_app.py overrides it
    with a one-adapter engine of its own.
    """
    from helpers.other_adapter import make_other_adapter

    from twin.serve.engine import Engine

    other = make_other_adapter(tiny_base, tiny_adapter, tmp_path_factory.mktemp("other") / "other")
    return Engine(tiny_base, [("twin", tiny_adapter), ("other", other)], max_batch=8)


@pytest.fixture(scope="session")
def twin_server(tiny_base: Path, tiny_adapter: Path):
    """URL of one real `twin serve` process for the session (token and options: helpers/server.py)."""
    from helpers.server import TOKEN, serve_args

    from devkit.live_server import twin_process

    env = {**os.environ, "TWIN_API_TOKEN": TOKEN}
    with twin_process("serve", *serve_args(tiny_base, tiny_adapter), health="/healthz", env=env) as url:
        yield url
