"""`twin demo`: stages are skipped exactly when their inputs are unchanged; serve stops both children."""

from __future__ import annotations

import _thread
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
    assert len({h1, h2, hash_paths([d])}) == 3
    assert hash_paths([tmp_path / "missing"]) != hash_paths([d])


def test_missing_sample_is_a_twin_error(tmp_path):
    from twin.errors import TwinError

    with pytest.raises(TwinError, match="sample export not found"):
        demo.run_demo(DemoOptions(workdir=tmp_path, sample=tmp_path / "none.json", serve=False))


def test_serve_prints_both_urls_and_ctrl_c_stops_both(tmp_path, monkeypatch):
    # Stand-ins for `twin serve` / `twin chat`: long sleepers (the real ones are tested by their owners).
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    lines: list[str] = []
    opts = DemoOptions(workdir=tmp_path, port=8123, chat_port=8124, echo=lines.append, twin_cmd=sleeper)
    started: list = []
    real_popen = demo.subprocess.Popen

    def popen(*a, **kw):
        p = real_popen(*a, **kw)
        started.append(p)
        return p

    monkeypatch.setattr(demo.subprocess, "Popen", popen)
    threading.Timer(1.5, _thread.interrupt_main).start()  # the user's ctrl-C
    t0 = time.monotonic()
    demo.serve_forever(opts, opts.paths)
    assert time.monotonic() - t0 < 15
    assert "server:    http://127.0.0.1:8123  (POST /reply)" in lines
    assert "chat page: http://127.0.0.1:8124" in lines
    assert len(started) == 2 and all(p.poll() is not None for p in started)


def test_serve_reports_a_child_that_dies(tmp_path):
    from twin.errors import TwinError

    dies = [sys.executable, "-c", "import sys; sys.exit(3)"]
    opts = DemoOptions(workdir=tmp_path, echo=lambda s: None, twin_cmd=dies)
    with pytest.raises(TwinError, match="exited with code 3"):
        demo.serve_forever(opts, opts.paths)


@pytest.mark.slow
def test_demo_runs_end_to_end_then_reuses_every_stage(tmp_path):
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
    assert (tmp_path / "data" / "processed" / "val.jsonl").is_file()
    assert sum("done in" in line for line in lines) == 5
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


def test_demo_stops_after_prepare_when_there_is_nothing_to_evaluate_on(tmp_path):
    # DM_2A_7M: 1 example, 0 held out; the demo used to pretrain and train for minutes, then fail in eval
    opts = DemoOptions(workdir=tmp_path / "w", sample=FIXTURES / "DM_2A_7M.json", echo=lambda s: None)
    p = opts.paths
    stages = Stages(p["stamps"], fresh=False, echo=opts.echo)
    demo._import_stage(stages, opts, p, 1, 2)
    with pytest.raises(demo.TwinError, match="held-out"):
        demo._prepare_stage(stages, opts, p, 2, 2)
    assert not (p["stamps"] / "prepare.json").exists()
