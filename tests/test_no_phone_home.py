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
KEYS = ("HF_HUB_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "DO_NOT_TRACK")
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
    "serve": "import twin.serve.app\n",
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
    if entry in ("serve", "web"):
        # serving and the page read local files only: the hub is off before any library loads.
        assert seen["env"]["HF_HUB_OFFLINE"] == "1" and seen["hub"]["offline"] is True
    else:
        # `twin model download` needs the hub when asked to; nothing else in the CLI calls it.
        assert seen["env"]["HF_HUB_OFFLINE"] is None
    if entry == "web":
        assert seen["torch"] is False
