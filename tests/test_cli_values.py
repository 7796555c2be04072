"""Bad option values are refused at the start of every command: one line naming the option, exit 2.

Each case runs the real `twin` command in a subprocess with paths that do not exist (no base, no
session, no credentials), so a check that ran after loading would fail differently: the message must
name the option, not a missing file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOWHERE = "/nonexistent/twin-test"

CASES = {
    "serve-port": (["serve", "--port", "99999", "--base", NOWHERE], "--port 99999"),
    "serve-port-0": (["serve", "--port", "0", "--base", NOWHERE], "--port 0"),
    "serve-threads": (["serve", "--threads", "0", "--base", NOWHERE], "--threads 0"),
    "chat-port": (["chat", "--port", "70000"], "--port 70000"),
    "demo-port": (["demo", "--port", "99999", "--workdir", NOWHERE], "--port 99999"),
    "demo-chat-port": (["demo", "--chat-port", "-1", "--workdir", NOWHERE], "--chat-port -1"),
    "drafts-tokens": (
        ["drafts", "--chat", "x", "--max-new-tokens", "0", "--env-file", NOWHERE],
        "--max-new-tokens 0",
    ),
    "drafts-debounce-nan": (
        ["drafts", "--chat", "x", "--debounce", "nan", "--env-file", NOWHERE],
        "--debounce nan",
    ),
    "drafts-debounce-inf": (
        ["drafts", "--chat", "x", "--debounce", "inf", "--env-file", NOWHERE],
        "--debounce inf",
    ),
    "drafts-temperature": (
        ["drafts", "--chat", "x", "--temperature", "-1", "--env-file", NOWHERE],
        "--temperature -1",
    ),
    "drafts-temperature-nan": (
        ["drafts", "--chat", "x", "--temperature", "nan", "--env-file", NOWHERE],
        "--temperature nan",
    ),
    "drafts-gap": (["drafts", "--chat", "x", "--gap-hours", "-1", "--env-file", NOWHERE], "--gap-hours -1"),
    "eval-run-up": (["eval", "--adapter", NOWHERE, "--run", ".."], "--run '..'"),
    "eval-run-abs": (["eval", "--adapter", NOWHERE, "--run", "/tmp/x"], "--run '/tmp/x'"),
    "eval-run-set": (["eval", "--adapter", NOWHERE, "--set", "run=../x"], "--run '../x'"),
    # "^...$" let a trailing line break through: a run directory named "me\n"
    "eval-run-newline": (["eval", "--adapter", NOWHERE, "--run", "me\n"], "--run 'me\\n'"),
    "eval-adapter-name": (["eval", "--adapter", NOWHERE + "/.."], "'..'"),
    "train-run": (["train", "--run", "../x", "--base", NOWHERE], "'../x'"),
    "train-memory-scope": (["train", "--base", NOWHERE, "--memory-scope", "everyone"], "--memory-scope"),
    # a float setting of inf/nan anywhere in a stage config (StageConfig: allow_inf_nan=False)
    "eval-temperature-inf": (["eval", "--adapter", NOWHERE, "--temperature", "inf"], "temperature"),
    "prepare-gap-inf": (["prepare", "--raw", NOWHERE, "--gap-hours", "inf"], "gap_hours"),
    "train-lr-nan": (["train", "--base", NOWHERE, "--set", "optim.lr=.nan"], "optim.lr"),
    # typer's own range checks and parse errors: one line too, not a usage box
    "typer-range": (["model", "tiny", "--out", NOWHERE, "--pretrain-steps", "-1"], "--pretrain-steps"),
    "typer-parse": (["serve", "--port", "abc"], "--port"),
    "typer-unknown": (["serve", "--bogus"], "--bogus"),
}


# One fresh interpreter runs every case through the real entry point (``twin.cli.main``) and reports
# each exit code and stderr, then whether torch was ever imported: none of these may load anything.
DRIVER = """
import contextlib, io, json, sys
from twin.cli import main
out = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    sys.argv = ["twin", *argv]
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code
    out[name] = {"code": code, "stderr": err.getvalue()}
out["torch loaded"] = "torch" in sys.modules
print("RESULT", json.dumps(out))
"""


@pytest.fixture(scope="module")
def results() -> dict:
    import json

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWIN_SERVER_URL": "http://127.0.0.1:9"}
    env.pop("TELEGRAM_API_ID", None)
    argvs = json.dumps({name: argv for name, (argv, _) in CASES.items()})
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, argvs], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, out.stdout + out.stderr
    return json.loads(line[7:])


def test_no_refusal_loads_torch(results):
    assert results["torch loaded"] is False


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_value_is_one_line_and_exit_2(case, results):
    named = CASES[case][1]
    got = results[case]
    lines = got["stderr"].strip().splitlines()
    assert got["code"] == 2, got["stderr"]
    assert len(lines) == 1 and lines[0].startswith("error: "), got["stderr"]
    assert named in lines[0], lines[0]
    assert not Path(NOWHERE).exists()
