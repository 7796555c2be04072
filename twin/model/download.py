"""``twin model download REPO``: a base model from the Hugging Face Hub into ``checkpoints/<repo id>``.

The only networked command of the model stage; everything else loads local directories. Offline
(or with ``HF_HUB_OFFLINE=1``) it fails with one line saying how to get the files another way; a
gated model (Llama 3.1) without a login or an accepted license, with one line saying how to log in.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from twin.errors import TwinError

log = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# Other frameworks' weights and exports that transformers' PyTorch loader never reads.
_IGNORE = [
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "*.onnx_data",
    "*.ot",
    "*.tflite",
    "*.gguf",
    "*.mlmodel",
    "coreml/*",
]


def default_dir(repo_id: str) -> Path:
    return Path("checkpoints") / repo_id


def download(repo_id: str, out: str | os.PathLike | None = None, *, revision: str | None = None) -> Path:
    """Fetch ``repo_id`` (weights, config, tokenizer) into ``out``; returns the checked directory."""
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        raise TwinError(f"{repo_id!r} is not a Hub repo id; expected OWNER/NAME, e.g. tiiuae/falcon-7b")
    target = Path(out) if out is not None else default_dir(repo_id)
    how_else = (
        f"on a machine with internet run `twin model download {repo_id}` and copy {target} here, "
        "or pass --base to any local model directory"
    )
    from huggingface_hub import HfApi, snapshot_download

    try:
        files = HfApi().list_repo_files(repo_id, revision=revision)
        ignore = list(_IGNORE)
        if any(f.endswith(".safetensors") for f in files):
            ignore += ["*.bin", "*.pt", "*.pth"]  # the same weights twice: keep safetensors only
        log.info("downloading %s to %s", repo_id, target)
        path = snapshot_download(repo_id, revision=revision, local_dir=str(target), ignore_patterns=ignore)
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise hub_error(e, repo_id, revision, how_else) from None
    from twin.model.load import check_base_dir

    return check_base_dir(path)


def _login_hint(repo_id: str) -> str:
    return (
        f"log in with `hf auth login` (or set HF_TOKEN to a token from huggingface.co/settings/tokens) "
        f"and accept the license on https://huggingface.co/{repo_id}"
    )


def hub_error(e: Exception, repo_id: str, revision: str | None, how_else: str) -> TwinError:
    """The one line for a failed download: huggingface_hub's exception -> what to do about it."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, OfflineModeIsEnabled):
        return TwinError(f"cannot download {repo_id}: HF_HUB_OFFLINE is set; {how_else}")
    if isinstance(e, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        return TwinError(f"{repo_id} is gated: {_login_hint(repo_id)}")
    if isinstance(e, RepositoryNotFoundError):
        if status == 401:  # the Hub answers 401 for private and gated repos when not logged in
            return TwinError(
                f"{repo_id}: not found, or private/gated and you are not logged in; {_login_hint(repo_id)}"
            )
        return TwinError(f"{repo_id}: no such model on the Hub (or it is private); check the id")
    if isinstance(e, RevisionNotFoundError):
        return TwinError(f"{repo_id}: revision {revision!r} not found")
    if isinstance(e, HfHubHTTPError) and status in (401, 403):  # a bad token, or no access granted
        return TwinError(f"{repo_id}: the Hub refused access (HTTP {status}); {_login_hint(repo_id)}")
    # network down, DNS, proxy, timeout: all mean "can't reach the hub"
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return TwinError(f"cannot download {repo_id} (no connection to the Hub? {first}); {how_else}")
