"""`twin demo`: stages are skipped exactly when their inputs are unchanged; serve stops both children."""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import sys
import threading
import time

import pytest

from twin import demo
from twin.demo import DemoOptions, Stages, hash_paths


def _pipeline(tmp_path, src, calls, *, fresh=False, lines=None):
    """Two chained stages like the demo's: 'a' copies src -> mid, 'b' reads mid -> out."""
    mid, out = tmp_path / "mid.txt", tmp_path / "out.txt"
    stages = Stages(
        tmp_path / "stamps", fresh=fresh, echo=(lines.append if lines is not None else lambda s: None)
    )

    def a():
        calls.append("a")
        mid.write_text(src.read_text().upper())
        return {"n": 1}

    def b():
        calls.append("b")
        out.write_text(mid.read_text() + "!")

    stages.run("a", {"src": hash_paths([src])}, [mid], a, 1, 2)
    stages.run("b", {"setting": 1}, [out], b, 2, 2)
    return stages


def test_rerun_reuses_finished_stages_and_redoes_downstream_of_a_change(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("hello")
    calls: list[str] = []
    lines: list[str] = []
    _pipeline(tmp_path, src, calls, lines=lines)
    assert calls == ["a", "b"]
    assert any(line.startswith("[1/2] a") and "done in" in line for line in lines)

    calls.clear()
    lines.clear()
    st = _pipeline(tmp_path, src, calls, lines=lines)
    assert calls == [] and st.skipped == ["a", "b"]
    assert all("up to date" in line for line in lines)

    src.write_text("changed")  # an input change redoes its stage and everything downstream
    calls.clear()
    _pipeline(tmp_path, src, calls)
    assert calls == ["a", "b"]
    assert (tmp_path / "out.txt").read_text() == "CHANGED!"

    (tmp_path / "out.txt").unlink()  # a missing output redoes just that stage
    calls.clear()
    _pipeline(tmp_path, src, calls)
    assert calls == ["b"]

    (tmp_path / "mid.txt").write_text("written by someone else")  # so does an output changed since
    calls.clear()
    _pipeline(tmp_path, src, calls)
    assert calls == ["a"] and (tmp_path / "mid.txt").read_text() == "CHANGED"

    calls.clear()
    _pipeline(tmp_path, src, calls, fresh=True)
    assert calls == ["a", "b"]


def test_failed_stage_is_not_marked_done(tmp_path):
    stages = Stages(tmp_path / "stamps", fresh=False, echo=lambda s: None)

    def boom():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        stages.run("x", {}, [], boom, 1, 1)
    assert not (tmp_path / "stamps" / "x.json").exists()
    ran = []
    Stages(tmp_path / "stamps", fresh=False, echo=lambda s: None).run(
        "x", {}, [], lambda: ran.append(1), 1, 1
    )
    assert ran == [1]


def test_hash_paths_sees_content_and_names(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.jsonl").write_text("1")
    h1 = hash_paths([d])
    (d / "a.jsonl").write_text("2")
    h2 = hash_paths([d])
    (d / "b.jsonl").write_text("2")
    h3 = hash_paths([d])
    assert len({h1, h2, h3}) == 3
    assert hash_paths([tmp_path / "missing"]) != h3
    # the same names and bytes elsewhere hash the same (a moved workdir reuses its stages) ...
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "a.jsonl").write_text("2")
    (copy / "b.jsonl").write_text("2")
    assert hash_paths([copy]) == h3
    (copy / "b.jsonl").rename(copy / "c.jsonl")  # ... and a renamed file is a change
    assert hash_paths([copy]) != h3


def test_missing_sample_is_a_twin_error(tmp_path):
    from twin.errors import TwinError

    with pytest.raises(TwinError, match="sample export not found"):
        demo.run_demo(DemoOptions(workdir=tmp_path, sample=tmp_path / "none.json", serve=False))


@pytest.mark.slow
def test_serve_runs_the_real_server_and_chat_page_and_ctrl_c_stops_both(
    tmp_path, monkeypatch, tiny_base, tiny_adapter
):
    """The demo's last step for real: `twin serve` on the session's tiny adapter and `twin chat`
    (Streamlit) both answer on the ports printed, and the user's ctrl-C stops both."""
    import httpx

    from devkit.live_server import free_port, wait_http

    monkeypatch.delenv("TWIN_API_TOKEN", raising=False)  # the demo serves loopback without a token
    lines: list[str] = []
    opts = DemoOptions(workdir=tmp_path, port=free_port(), chat_port=free_port(), echo=lines.append)
    p = opts.paths
    p["adapter"].parent.mkdir(parents=True)
    p["base"].parent.mkdir(parents=True)
    p["base"].symlink_to(tiny_base)  # where the demo's own stages would have built them
    p["adapter"].symlink_to(tiny_adapter)
    server, page = f"http://127.0.0.1:{opts.port}", f"http://127.0.0.1:{opts.chat_port}"
    started: list = []
    real_popen = demo.subprocess.Popen

    def popen(*a, **kw):  # the real Popen; the test keeps the children to check they are gone
        started.append(real_popen(*a, **kw))
        return started[-1]

    monkeypatch.setattr(demo.subprocess, "Popen", popen)
    seen: dict = {}
    returned = threading.Event()  # serve_forever is over: a late ctrl-C must not hit the next test

    def user() -> None:  # waits for both, talks to both, then presses ctrl-C
        try:
            wait_http(server + "/healthz", timeout=120)
            seen["health"] = httpx.get(server + "/healthz").json()["status"]
            body = {"message": "hi there", "temperature": 0, "max_new_tokens": 6}
            seen["reply"] = httpx.post(server + "/reply", json=body, timeout=60).json()
            wait_http(page + "/_stcore/health", timeout=120)
            seen["page"] = httpx.get(page + "/").status_code, httpx.get(page + "/_stcore/health").text
        except Exception as e:  # reported by the first assert below
            seen["error"] = repr(e)
        finally:
            seen["ctrl_c"] = time.monotonic()
            if not returned.is_set():
                _thread.interrupt_main()
            if not returned.wait(60):  # ctrl-C did not stop it: end the children, fail, do not hang
                seen["error"] = "serve_forever did not stop on ctrl-C"
                for pr in started:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pr.pid, signal.SIGKILL)

    threading.Thread(target=user, daemon=True).start()
    try:
        demo.serve_forever(opts, p)
    except demo.TwinError as e:  # a child exited: the user thread may know why
        raise AssertionError(seen.get("error", str(e))) from e
    finally:
        returned.set()
    assert "error" not in seen, seen["error"]
    assert lines[:2] == [f"server:    {server}  (POST /reply)", f"chat page: {page}"]
    assert seen["health"] == "ok" and seen["page"] == (200, "ok")
    assert seen["reply"]["adapter"] == "demo" and 1 <= seen["reply"]["usage"]["completion_tokens"] <= 6
    # Both stopped by the demo's SIGTERM within its 10 s grace, not SIGKILLed after it: uvicorn
    # shuts down, then re-raises the signal it caught (-15); Streamlit exits 0.
    assert time.monotonic() - seen["ctrl_c"] < 10
    assert [pr.poll() for pr in started] == [-signal.SIGTERM, 0]
    for url in (server, page):  # both ports are closed again
        with pytest.raises(httpx.ConnectError):
            httpx.get(url, timeout=2)


def test_serve_reports_a_child_that_dies(tmp_path):
    from twin.errors import TwinError

    dies = [sys.executable, "-c", "import sys; sys.exit(3)"]
    opts = DemoOptions(workdir=tmp_path, echo=lambda s: None, twin_cmd=dies)
    with pytest.raises(TwinError, match="exited with code 3"):
        demo.serve_forever(opts, opts.paths)


@pytest.mark.slow
def test_demo_runs_end_to_end_then_reuses_every_stage(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="twin.train.loop")
    lines: list[str] = []
    opts = DemoOptions(
        workdir=tmp_path,
        serve=False,
        pretrain_steps=3,
        eval_examples=3,
        train_overrides={
            "max_steps": 2,
            "checkpoint_every_steps": 0,
            "eval": {"every_steps": 0, "max_batches": 1},
        },
        echo=lines.append,
    )
    first = demo.run_demo(opts)
    assert list(first["times"]) == ["import", "prepare", "base", "train", "eval"] and first["skipped"] == []
    assert (tmp_path / "checkpoints" / "runs" / "demo" / "report.html").is_file()
    # the demo's chats and base are its own: the directories your own chats go through stay untouched
    assert (tmp_path / "data" / "demo" / "processed" / "val.jsonl").is_file()
    assert (tmp_path / "checkpoints" / "demo" / "tiny-falcon" / "model.safetensors").is_file()
    assert not (tmp_path / "data" / "raw").exists() and not (tmp_path / "data" / "processed").exists()
    assert not (tmp_path / "checkpoints" / "tiny-falcon").exists()
    assert sum("done in" in line for line in lines) == 5
    # the train stage's first-step time counts from that stage's start, not from the base stage's
    (first_step,) = [r for r in caplog.records if r.getMessage().startswith("first optimizer step at")]
    assert first_step.args[2] == "this stage started" and first_step.args[0] <= first["times"]["train"]
    lines.clear()
    second = demo.run_demo(opts)
    assert second["skipped"] == ["import", "prepare", "base", "train", "eval"]
    assert second["total_seconds"] < 10


# ---------------------------------------------------------------- real exports (issue 19, section 6)

FIXTURES = __import__("pathlib").Path(__file__).resolve().parent / "fixtures" / "telegram"


def _import_only(tmp_path, sample, **kw):
    opts = DemoOptions(workdir=tmp_path / "w", sample=sample, echo=lambda s: None, **kw)
    p = opts.paths
    demo._import_stage(Stages(p["stamps"], fresh=False, echo=opts.echo), opts, p, 1, 1)
    return sorted(f.name for f in (p["raw"] / "telegram").glob("*.jsonl"))


def test_demo_takes_me_for_an_export_whose_owner_it_cannot_tell(tmp_path):
    sample = FIXTURES / "langchain_result.json"  # anonymised: neither sender is the chat's peer
    with pytest.raises(demo.TwinError, match="--me"):
        _import_only(tmp_path / "a", sample)
    assert _import_only(tmp_path / "b", sample, me="Batman & Robin") == ["5965280513.jsonl"]


def test_another_sample_replaces_the_demos_chats_not_joins_them(tmp_path):
    assert _import_only(tmp_path, FIXTURES / "DM_2A_7M.json") == ["700000000.jsonl"]
    assert _import_only(tmp_path, FIXTURES / "langchain_result.json", me="Batman & Robin") == [
        "5965280513.jsonl"
    ]


def test_demo_takes_include_groups_for_a_group_export(tmp_path):
    import json

    full = json.loads((FIXTURES / "MultiChat_2C_6M.json").read_text(encoding="utf-8"))
    full["chats"]["list"] = [c for c in full["chats"]["list"] if c["type"] == "private_group"]
    group = tmp_path / "group.json"
    group.write_text(json.dumps(full), encoding="utf-8")
    with pytest.raises(demo.TwinError, match="--include-groups"):
        _import_only(tmp_path / "a", group)  # stops here, not later with "raw data directory not found"
    assert _import_only(tmp_path / "b", group, include_groups=True) == ["700000002.jsonl"]


def test_demo_command_has_the_options_it_tells_you_to_add(tmp_path):
    import os
    import subprocess

    root = FIXTURES.parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "twin.cli", "demo", "--serve", "0", "--workdir", str(tmp_path),
         "--sample", str(FIXTURES / "langchain_result.json"), "--me", "nobody-here"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120,
    )  # fmt: skip
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and "nobody-here" in errors[0], out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--port", "--chat-port"])
def test_a_busy_serve_port_stops_the_demo_before_its_first_stage(tmp_path, option):
    """The demo serves after minutes of training: a port already taken is one line at the start
    (exit 2, nothing imported or written), not a dead server after the evaluation."""
    import os
    import socket
    import subprocess

    root = FIXTURES.parents[2]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = {"--port": "--chat-port", "--chat-port": "--port"}[option]
        with socket.socket() as free:  # a port free now for the other one
            free.bind(("127.0.0.1", 0))
            spare = free.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "twin.cli", "demo", "--workdir", str(tmp_path), option, str(port), other,
             str(spare), "--sample", str(FIXTURES / "langchain_result.json")],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120,
        )  # fmt: skip
    var = {"--port": "PORT", "--chat-port": "CHAT_PORT"}[option]
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: 127.0.0.1:{port} already in use (is a twin {'serve' if option == '--port' else 'chat'} "
        f"already running?); stop that server or pick another port: {option} N (make demo {var}=N), "
        "or --serve 0 to stop after the evaluation (DEMO_SERVE=0)"
    ]
    assert "[1/" not in out.stdout and not list(tmp_path.iterdir())  # no stage ran, nothing written


def test_demo_refuses_one_port_for_both_the_server_and_the_page(tmp_path):
    from typer.testing import CliRunner

    from twin.cli import app
    from twin.errors import TwinError

    result = CliRunner().invoke(
        app, ["demo", "--workdir", str(tmp_path), "--port", "8123", "--chat-port", "8123"]
    )
    assert isinstance(result.exception, TwinError) and "both 8123" in str(result.exception)
    assert not list(tmp_path.iterdir())


def test_demo_stops_after_prepare_when_there_is_nothing_to_evaluate_on(tmp_path):
    # DM_2A_7M: 1 example, 0 held out; the demo used to pretrain and train for minutes, then fail in eval
    opts = DemoOptions(workdir=tmp_path / "w", sample=FIXTURES / "DM_2A_7M.json", echo=lambda s: None)
    p = opts.paths
    stages = Stages(p["stamps"], fresh=False, echo=opts.echo)
    demo._import_stage(stages, opts, p, 1, 2)
    with pytest.raises(demo.TwinError, match="held-out"):
        demo._prepare_stage(stages, opts, p, 2, 2)
    assert not (p["stamps"] / "prepare.json").exists()
