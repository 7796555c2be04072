"""The ``twin`` command: one subcommand per stage. The Makefile calls only these.

Each stage registers its commands from its own ``cli`` module (``twin/<stage>/cli.py``; the demo's
from ``twin/demo.py``), which imports nothing heavy at module level, so ``twin --help`` stays fast and a stage never pays for
another's imports. User-fixable errors (:class:`TwinError`) print as one line and exit 2.
"""

from __future__ import annotations

import atexit
import gc
import sys

import typer

from twin.errors import TwinError
from twin.fileio import keep_private

app = typer.Typer(
    name="twin",
    help="Turn your own Telegram chats into a model that replies like you.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    from twin.logs import setup_logging

    setup_logging(verbose)


def _register_stages() -> None:
    import importlib

    for module in (
        "twin.sources.cli",
        "twin.prepare.cli",
        "twin.model.cli",
        "twin.train.cli",
        "twin.serve.cli",
        "twin.eval.cli",
        "twin.publish.cli",
        "twin.demo",
        "twin.drafts.cli",
    ):
        importlib.import_module(module).register(app)


_register_stages()


def main() -> None:
    # the click typer runs on (vendored as typer._click in recent typer): its exception classes
    click = sys.modules[typer.BadParameter.__module__]
    keep_private()  # everything written from here on is 0600 / 0700: it is all derived from your chats
    # At exit every object is freed by its module's teardown anyway; Python's last full collection
    # would first walk the ~400k of a process that loaded torch and a model (0.5 s, measured): skipped.
    atexit.register(gc.freeze)
    try:
        code = app(standalone_mode=False)
    except TwinError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click.NoArgsIsHelpError as e:
        e.show()  # `twin` alone: the help
        sys.exit(2)
    except click.ClickException as e:
        # A bad option value or an unknown option: one line like every other refusal, not a box.
        print(f"error: {_usage_line(e)}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.Abort:  # EOF at a prompt (typer's own class: the vendored click module has none)
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("interrupted: everything written so far is kept; re-run to continue", file=sys.stderr)
        sys.exit(130)
    if type(code) is int and code:  # typer.Exit(code) from a command
        sys.exit(code)


def _usage_line(e: Exception) -> str:
    ctx = getattr(e, "ctx", None)
    message = " ".join(e.format_message().split())  # type: ignore[attr-defined]
    return f"{message} (see `{ctx.command_path} --help`)" if ctx is not None else message


if __name__ == "__main__":
    main()
