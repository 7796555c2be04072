"""The CLI root: help is fast to build, a TwinError prints one line and exits 2."""

import os
import subprocess
import sys

import pytest
import typer

from twin import cli
from twin.errors import TwinError


def test_twin_error_prints_one_line_and_exits_2(monkeypatch, capsys):
    def boom(**_):
        raise TwinError("data/raw/1.jsonl:3: record is missing 'date'")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == "error: data/raw/1.jsonl:3: record is missing 'date'\n"


def test_help_lists_every_stage_without_importing_torch():
    code = (
        "import os, sys; from typer.testing import CliRunner; from twin.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); print(r.output); "
        "print('TORCH_LOADED' if 'torch' in sys.modules else 'TORCH_FREE'); "
        "print('OMP', os.environ.get('OMP_WAIT_POLICY'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert "TORCH_FREE" in out
    # Only the commands that run torch ask OpenMP to wait passively, not every `twin` import.
    assert "OMP None" in out
    for command in (
        "export",
        "prepare",
        "model",
        "train",
        "configs",
        "serve",
        "chat",
        "eval",
        "publish",
        "demo",
    ):
        assert command in out
    assert isinstance(cli.app, typer.Typer)


def test_eof_at_a_prompt_is_interrupted_not_a_traceback(monkeypatch, capsys):
    def eof(**_):
        raise typer.Abort()  # what typer raises for an EOFError inside a command

    monkeypatch.setattr(cli, "app", eof)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_output_to_a_closed_pipe_ends_quietly():
    # `twin drafts --help | head -1`: the reader is gone before twin writes; typer exits 1, and main()
    # must let that exit through rather than crash in its own except clauses.
    p = subprocess.Popen(
        [sys.executable, "-c", "from twin.cli import main; main()", "drafts", "--help"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait() == 1
    assert "Traceback" not in err, err
