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


def test_a_twin_process_exits_without_walking_its_heap_in_a_last_full_collection(tmp_path):
    """Python's last full collection at exit would walk every object a command left (0.5 s for a
    process that loaded torch and a model): ``main`` freezes them at exit, so that collection finds
    next to nothing to look at. The callback records how many objects each full collection sees."""
    log = tmp_path / "gc.log"
    code = (
        "import gc, sys\n"
        "def seen(phase, info):\n"
        "    if phase == 'start' and info['generation'] == 2:\n"
        f"        open({str(log)!r}, 'a').write(f'{{len(gc.get_objects())}}\\n')\n"
        "heap = [{'k': [i]} for i in range(200_000)]  # long-lived objects, as a loaded model's\n"
        "gc.callbacks.append(seen)\n"
        "sys.argv = ['twin', 'configs', '--help']\n"
        "from twin.cli import main\n"
        "main()\n"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    walked = [int(n) for n in log.read_text().split()]
    assert walked and walked[-1] < 50_000, walked  # the last one, at exit: not the 400k objects above


def test_the_first_plot_on_a_machine_logs_nothing_about_fonts(tmp_path):
    # matplotlib builds its font cache the first time (a fresh MPLCONFIGDIR), saying so at INFO:
    # nothing a user of `twin eval` can act on
    code = (
        "from twin.logs import setup_logging; setup_logging(); "
        "from matplotlib import font_manager; font_manager.findfont('DejaVu Sans'); print('PLOTTED')"
    )
    env = os.environ | {"MPLCONFIGDIR": str(tmp_path / "mpl"), "COLUMNS": "200"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert "PLOTTED" in run.stdout and (tmp_path / "mpl").is_dir()  # the cache was built here
    assert "fontManager" not in run.stdout + run.stderr, run.stdout + run.stderr
