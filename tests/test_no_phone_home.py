"""Every entry point turns off Hugging Face telemetry (and the server and page hub calls) by itself.

Each case starts a fresh Python without any of the variables (conftest sets them for the test
process), loads one entry point the way it is really loaded, and prints what it sees afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "DO_NOT_TRACK", "USE_HUB_KERNELS")
REPORT = (
    "import json, os, sys\n"
    "import huggingface_hub.constants as c\n"
    "print('ENV', json.dumps({'env': {k: os.environ.get(k) for k in sys.argv[1:]},"
    " 'hub': {'telemetry_off': c.HF_HUB_DISABLE_TELEMETRY, 'offline': c.HF_HUB_OFFLINE},"
    " 'torch': 'torch' in sys.modules}))\n"
)
LOAD = {
    # the `twin` console script imports twin.cli:main
    "cli": "import twin.cli\n",
    # `twin serve` as the console script runs it, stopped by a bad --port after its set-up, before loading
    "serve": "import sys, twin.cli\nkeys, sys.argv = sys.argv, ['twin', 'serve', '--port', '0']\n"
    "try:\n    twin.cli.main()\nexcept SystemExit:\n    sys.argv = keys\n",
    # the page, run as streamlit runs it (no server listening: it shows an error and returns)
    "web": "import runpy, logging; logging.disable(logging.WARNING)\n"
    f"runpy.run_path({str(ROOT / 'web' / 'app.py')!r}, run_name='__main__')\n",
}


def _run(entry: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    env.update(TWIN_SERVER_URL="http://127.0.0.1:9", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", LOAD[entry] + REPORT, *KEYS], capture_output=True, text=True, env=env,
        timeout=180, cwd=ROOT,
    )  # fmt: skip
    line = next((x for x in out.stdout.splitlines() if x.startswith("ENV ")), None)
    assert line, out.stdout + out.stderr
    return json.loads(line[4:])


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["cli", "serve", "web"])
def test_entry_point_turns_telemetry_off(entry):
    seen = _run(entry)
    assert seen["env"]["HF_HUB_DISABLE_TELEMETRY"] == "1" and seen["env"]["DO_NOT_TRACK"] == "1"
    assert seen["hub"]["telemetry_off"] is True
    assert seen["env"]["USE_HUB_KERNELS"] == "0"
    if entry in ("serve", "web"):
        # serving and the page read local files only: the hub is off before any library loads.
        assert seen["env"]["HF_HUB_OFFLINE"] == "1" and seen["hub"]["offline"] is True
    else:
        # `twin model download` needs the hub when asked to; nothing else in the CLI calls it.
        assert seen["env"]["HF_HUB_OFFLINE"] is None
    if entry == "web":
        assert seen["torch"] is False


def test_a_loaded_model_keeps_its_own_layers_not_the_hubs_kernels(tiny_base):
    """transformers would kernelize every model it loads with layers fetched from the hub wherever the
    device has them (CUDA here is what would; the check is the same on CPU): twin's loads opt out."""
    code = (
        "from twin.model.load import load_base\n"
        f"model, _ = load_base({str(tiny_base)!r}, dtype='float32')\n"
        "print('KERNELS', model.use_kernels)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180, cwd=ROOT
    )
    assert "KERNELS False" in out.stdout, out.stdout + out.stderr[-2000:]


# --------------------------------------------------------------------------------------------
# The whole pipeline, each stage a real `twin` subprocess, with every connect() and DNS lookup of a
# non-loopback address recorded by a sitecustomize.py on PYTHONPATH (issue 19, section 4). Only
# `twin model download` and `twin export telegram` / `twin drafts` may reach the internet.

SITECUSTOMIZE = r"""
import ipaddress, os, socket, sys

_LOG = os.environ.get("TWIN_TEST_CONNECT_LOG")


def _outside(host):
    host = str(host).split("%")[0].strip("[]")
    if host in ("localhost", "", "0.0.0.0", "::"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name other than localhost: resolving it already leaves the machine


def _record(kind, what):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(f"{kind} {what!r} pid={os.getpid()} argv={' '.join(sys.argv)[:160]}\n")


if _LOG:
    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        if isinstance(address, tuple) and _outside(address[0]):
            _record("connect", address)
        return _connect(self, address)

    def connect_ex(self, address):
        if isinstance(address, tuple) and _outside(address[0]):
            _record("connect", address)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and _outside(host.decode() if isinstance(host, bytes) else host):
            _record("dns", host)
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """``(env, log)``: a subprocess environment whose connections to the outside land in ``log``."""
    d = tmp_path_factory.mktemp("watch")
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    log = d / "connections.log"
    env = {k: v for k, v in os.environ.items() if k not in KEYS}  # twin's own defaults, not conftest's
    env.update(PYTHONPATH=f"{d}{os.pathsep}{ROOT}", TWIN_TEST_CONNECT_LOG=str(log), TWIN_API_TOKEN="")
    return env, log


def test_the_recorder_sees_an_outgoing_connection(watched, tmp_path):
    env, _ = watched
    log = tmp_path / "probe.log"
    code = "import socket\ntry:\n    socket.create_connection(('192.0.2.1', 9), timeout=0.2)\nexcept OSError:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], env={**env, "TWIN_TEST_CONNECT_LOG": str(log)}, timeout=60)
    assert "192.0.2.1" in log.read_text(encoding="utf-8")


def _stage(env: dict, logs: dict, name: str, *args: str, timeout: float = 600) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "twin.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    logs[name] = out.stdout + out.stderr
    assert out.returncode == 0, f"{name}: {out.stderr[-3000:]}"


def _serve_and_chat(env: dict, logs: dict, w: Path) -> None:
    import httpx

    from devkit.live_server import twin_process

    adapter = w / "checkpoints" / "adapters" / "t"
    with twin_process(
        "serve", "--adapter", str(adapter), "--threads", "1", health="/healthz", env=env
    ) as url:
        r = httpx.post(
            url + "/reply", json={"message": "are you coming tonight?", "max_new_tokens": 4}, timeout=120
        )
        assert r.status_code == 200, r.text
        with twin_process("chat", "--server", url, health="/_stcore/health", env=env) as page:
            assert httpx.get(page + "/", timeout=60).status_code == 200
        # the page's own script, run as streamlit runs it, talking to the live server
        load = (
            "import runpy, logging; logging.disable(logging.WARNING)\n"
            f"runpy.run_path({str(ROOT / 'web' / 'app.py')!r}, run_name='__main__')\n"
        )
        page_run = subprocess.run(
            [sys.executable, "-c", load], env={**env, "TWIN_SERVER_URL": url}, capture_output=True, text=True,
            timeout=180, cwd=ROOT,
        )  # fmt: skip
        logs["page"] = page_run.stdout + page_run.stderr
        assert page_run.returncode == 0, page_run.stderr[-2000:]


@pytest.fixture(scope="module")
def pipeline(watched, tmp_path_factory):
    """export desktop, prepare, model tiny, train, eval, serve + /reply, chat page, merge, gguf."""
    env, log = watched
    w = tmp_path_factory.mktemp("pipeline")
    raw, data, ck = w / "data" / "raw", w / "data" / "processed", w / "checkpoints"
    logs: dict[str, str] = {}
    # the bundled sample, cut to a few chats (~2,500 messages) so every stage stays quick
    full = json.loads((ROOT / "data" / "sample" / "result.json").read_text(encoding="utf-8"))
    full["chats"]["list"] = full["chats"]["list"][:3]
    sample = w / "result.json"
    sample.write_text(json.dumps(full, ensure_ascii=False), encoding="utf-8")
    _stage(env, logs, "export", "export", "desktop", str(sample), "--out", str(raw))
    _stage(env, logs, "prepare", "prepare", "--raw", str(raw), "--out", str(data))
    _stage(
        env,
        logs,
        "tiny",
        "model",
        "tiny",
        "--out",
        str(ck / "tiny"),
        "--texts",
        str(data),
        "--pretrain-steps",
        "0",
    )
    _stage(env, logs, "train", "train", "--base", str(ck / "tiny"), "--data", str(data), "--run", "t",
           "--max-steps", "2", "--memory", "1", "--precision", "32-true", "--set", f"out_dir={ck}",
           "--set", "eval.every_steps=0", "--set", "data.max_seq_length=256", "--set", "data.reply_tokens=64")  # fmt: skip
    _stage(env, logs, "eval", "eval", "--adapter", str(ck / "adapters" / "t"), "--data", str(data), "--run", "t",
           "--out-dir", str(ck), "--max-examples", "2", "--samples", "1", "--max-new-tokens", "2")  # fmt: skip
    _serve_and_chat(env, logs, w)
    _stage(
        env,
        logs,
        "merge",
        "publish",
        "merge",
        "--adapter",
        str(ck / "adapters" / "t"),
        "--out",
        str(ck / "merged"),
    )
    _stage(env, logs, "gguf", "publish", "gguf", "--model", str(ck / "merged"), "--out", str(ck / "gguf"))
    return {"dir": w, "logs": logs, "connections": log.read_text(encoding="utf-8") if log.exists() else ""}


@pytest.mark.slow
def test_no_stage_connects_outside(pipeline):
    assert pipeline["connections"] == ""


@pytest.mark.slow
def test_every_line_printed_is_for_the_user(pipeline):
    # no bitsandbytes kernel notice, no library deprecations, no library DEBUG lines (issue 19, section 6)
    noise = ("gemm_4bit_forward", "kernels-community", "FutureWarning", "DeprecationWarning", "DEBUG",
             "Token indices sequence length")  # fmt: skip
    found = {stage: [n for n in noise if n in text] for stage, text in pipeline["logs"].items()}
    assert {stage: hits for stage, hits in found.items() if hits} == {}


@pytest.mark.slow
def test_everything_written_is_private(pipeline):
    # chats, examples, memory, base, adapter, checkpoint, report, merged model, GGUF: 0600 in 0700
    w = pipeline["dir"]
    written = [p for top in (w / "data", w / "checkpoints") for p in [top, *top.rglob("*")]]
    assert any(p.name == "pairs.jsonl" for p in written) and any(p.name == "report.html" for p in written)
    assert any(p.name == "state.ckpt" for p in written) and any(p.suffix == ".gguf" for p in written)
    loose = [
        f"{oct(p.stat().st_mode & 0o777)} {p.relative_to(w)}"
        for p in written
        if not p.is_symlink() and p.stat().st_mode & 0o777 != (0o700 if p.is_dir() else 0o600)
    ]
    assert loose == []


def test_bitsandbytes_stays_unloaded_until_qlora_asks_for_it(watched, tmp_path):
    # importing peft (as train, serve, eval and merge do) must not import bitsandbytes, whose import
    # fetches a kernel from the hub; QLoRA (check_quantize on a CUDA machine) lets it back in.
    env, _ = watched
    log = tmp_path / "bnb.log"
    code = (
        "import sys, importlib.util, twin, peft\n"
        "from transformers.utils.import_utils import is_bitsandbytes_available as t\n"
        "from peft.import_utils import is_bnb_available as p\n"
        "print('BEFORE', 'bitsandbytes' in sys.modules and sys.modules['bitsandbytes'] is not None, t(), p())\n"
        "twin.allow_bitsandbytes()\n"
        "print('AFTER', importlib.util.find_spec('bitsandbytes') is not None, t(), p())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**env, "TWIN_TEST_CONNECT_LOG": str(log)},
                         capture_output=True, text=True, timeout=180)  # fmt: skip
    assert "BEFORE False False False" in out.stdout, out.stdout + out.stderr
    assert "AFTER True True True" in out.stdout, out.stdout + out.stderr
    assert "gemm_4bit_forward" not in out.stderr and not log.exists()
