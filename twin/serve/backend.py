"""``twin serve --backend URL``: generation by an OpenAI-compatible ``/v1/completions`` server.

vLLM (``--enable-lora``: every adapter batched with Punica/S-LoRA kernels, on GPUs), llama.cpp's
server and Ollama all serve ``/v1/completions``. :class:`RemoteEngine` is a
:class:`twin.serve.engine.ReplyEngine` as the local engine is, so the routes, the queue gate, auth, limits and streaming are the
same; only the decoding happens elsewhere. twin keeps everything that makes the reply the twin's:

- the prompt is rendered here, exactly as for the local engine (template, context cut to the
  adapter's budget with the base's tokenizer, memory), and sent as text with
  ``add_special_tokens: false`` (vLLM's switch; twin's templates carry their own special tokens);
- the adapter name is the backend's model name (vLLM: ``--lora-modules NAME=DIR``; llama.cpp:
  ``--model_alias NAME`` on the merged GGUF);
- the sampling settings go over as they are (``temperature``, ``top_p``, ``top_k``, ``seed``,
  ``min_tokens`` and the template's and speaker stop strings; ``repetition_penalty`` as vLLM's field
  and llama.cpp's ``repeat_penalty``, which looks back 64 tokens only, so a penalised reply may
  differ there; ``min_p`` 0, as twin does not use it);
- the streamed text goes through twin's own stop handling (a speaker label dropped, nothing past a
  stop shown, trailing space held back), so the deltas and the reply are what twin's engine shows.

Requests are streamed from the backend so text deltas reach ``/reply/stream`` as they come and a
client that leaves closes the backend request (vLLM and llama.cpp then stop decoding it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.inference.generate import Conversation, Generation, GenParams, visible_text
from twin.prompt import STOP_STRINGS
from twin.serve.engine import BASE_NAME, Adapter, ReplyEngine, plan_adapters
from twin.serve.http import ApiError

log = logging.getLogger(__name__)

KEY_ENV = "TWIN_BACKEND_KEY"  # sent as the bearer token to the backend, if set
REMOTE_MAX_BATCH = 8  # requests in flight to the backend when --max-batch is 0 (the backend batches)
PROBE_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5  # a client's wait before retrying while the backend does not answer


def check_backend_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing ``/v1``; refused otherwise, before loading."""
    from urllib.parse import urlparse

    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise TwinError(f"--backend {url}: must be an http:// or https:// URL, e.g. http://127.0.0.1:8080")
    return url.rstrip("/").removesuffix("/v1")


def completion_body(model: str, prompt: str, params: GenParams, stops: tuple[str, ...]) -> dict:
    """The ``/v1/completions`` request for one reply (see the module docstring for each field)."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": params.max_new_tokens,
        "min_tokens": params.min_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,  # 0 = off, for llama.cpp (which refuses -1) and vLLM alike
        "min_p": 0.0,
        "repetition_penalty": params.repetition_penalty,
        "repeat_penalty": params.repetition_penalty,
        "stop": list(stops),
        "stream": True,
        "add_special_tokens": False,
        "skip_special_tokens": True,
    }
    if params.temperature != 0 and params.seed is not None:
        body["seed"] = params.seed
    return body


def sse_events(lines: Iterator[str]) -> Iterator[dict]:
    """The JSON events of an OpenAI-style SSE stream, up to ``[DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if "error" in event:
            raise TwinError(f"the backend refused the request: {str(event['error'])[:200]}")
        yield event


class ShownText:
    """twin's stop handling on text that arrives in pieces: what is safe to show after each piece."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops, self.text, self.shown, self.stopped = stops, "", "", False

    def add(self, piece: str, final: bool = False) -> str:
        self.text += piece
        visible, self.stopped = visible_text(self.text, self.stops, final=final)
        if visible.startswith(self.shown) and len(visible) > len(self.shown):
            delta, self.shown = visible[len(self.shown) :], visible
            return delta
        return ""


class RemoteEngine(ReplyEngine):
    """A :class:`~twin.serve.engine.ReplyEngine` over a ``/v1/completions`` backend.

    Needs the base's tokenizer and config locally (to render and cut prompts as training did), not
    its weights' memory: nothing is loaded but the tokenizer.
    """

    def __init__(
        self,
        url: str,
        base: str | os.PathLike,
        adapters: list[str | os.PathLike | tuple[str, str | os.PathLike]] | None = None,
        *,
        default: str | None = None,
        max_batch: int = REMOTE_MAX_BATCH,
        memory: int | None = None,
        timeout: float = 600.0,
    ) -> None:
        import httpx

        from twin.model.load import load_tokenizer

        self.url = check_backend_url(url)
        plan = plan_adapters(base, adapters, default, memory)
        super().__init__(plan, load_tokenizer(plan.base), _max_positions(plan.base))
        self.max_batch = max_batch
        key = os.environ.get(KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        self.pool = ThreadPoolExecutor(max_workers=max_batch, thread_name_prefix="twin-backend")
        log.info("generation by %s/v1/completions; adapters: %s (default %s)",
                 self.url, ", ".join(self.adapters), self.default)  # fmt: skip
        self.probe()

    def probe(self) -> None:
        """One look at the backend's ``/v1/models`` at start: a backend that is down, or serves no model
        named after an adapter, made every request fail with nothing said at start. Warnings only: the
        backend may come up after twin, or not list its models (then nothing is said)."""
        import httpx

        try:
            r = self.client.get("/v1/models", timeout=PROBE_TIMEOUT_S)
        except httpx.TransportError as e:
            log.warning("the backend at %s does not answer (%s): replies get 503 until it does",
                        self.url, type(e).__name__)  # fmt: skip
            return
        served = _model_ids(r)
        missing = [n for n in self.adapters if n != BASE_NAME and served is not None and n not in served]
        if missing:
            log.warning(
                "the backend at %s serves %s, not %s: requests for %s will fail; name the backend's model "
                "after the adapter (llama.cpp: --model_alias NAME; vLLM: --lora-modules NAME=DIR)",
                self.url, ", ".join(served) or "no model", ", ".join(missing),
                "it" if len(missing) == 1 else "them",
            )  # fmt: skip

    def submit(
        self,
        adapter: Adapter,
        conv: Conversation,
        params: GenParams,
        on_delta: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Future:
        """:meth:`ReplyEngine.submit` on the backend (``on_delta`` is called on a pool thread)."""
        params, ids = self.prompt_ids(adapter, conv, params)
        prompt = self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        submitted = time.perf_counter()
        return self.pool.submit(
            self._complete,
            adapter.name,
            prompt,
            len(ids),
            params,
            on_delta,
            cancel or threading.Event(),
            submitted,
        )

    def _complete(
        self,
        name: str,
        prompt: str,
        prompt_tokens: int,
        params: GenParams,
        on_delta: Callable[[str], None] | None,
        cancel: threading.Event,
        submitted: float,
    ) -> Generation:
        stops = tuple(dict.fromkeys((*STOP_STRINGS, *params.extra_stops)))
        body = completion_body(name, prompt, params, stops)
        import httpx

        try:
            return self._stream(name, body, stops, prompt_tokens, on_delta, cancel, submitted)
        except httpx.TransportError as e:  # down, timed out, or gone mid-reply: a 503, not a traceback
            log.warning("the backend at %s does not answer (%s): 503", self.url, type(e).__name__)
            raise ApiError(
                503,
                f"the generation backend at {self.url} does not answer ({type(e).__name__}); retry later",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from None

    def _stream(
        self,
        name: str,
        body: dict,
        stops: tuple[str, ...],
        prompt_tokens: int,
        on_delta: Callable[[str], None] | None,
        cancel: threading.Event,
        submitted: float,
    ) -> Generation:
        started = time.perf_counter()
        shown, parts, tokens, reason = ShownText(stops), [], 0, "length"
        with self.client.stream("POST", "/v1/completions", json=body) as r:
            if r.status_code != 200:
                raise _refused(self.url, name, r)
            for event in sse_events(r.iter_lines()):
                if cancel.is_set():
                    return _cancelled(shown.shown, prompt_tokens, tokens, started, submitted)
                choice = (event.get("choices") or [{}])[0]
                piece = choice.get("text") or ""
                tokens = (event.get("usage") or {}).get("completion_tokens") or tokens + bool(piece)
                reason = choice.get("finish_reason") or reason
                parts.append(shown.add(piece))
                if on_delta is not None and parts[-1]:
                    on_delta(parts[-1])
        parts.append(shown.add("", final=True))
        if on_delta is not None and parts[-1]:
            on_delta(parts[-1])
        stopped_by = "stop" if shown.stopped or reason == "stop" else "length"
        gen = Generation("".join(parts), prompt_tokens, tokens, time.perf_counter() - started, stopped_by)
        gen.queue_seconds = started - submitted
        return gen


def _cancelled(text: str, prompt_tokens: int, tokens: int, started: float, submitted: float) -> Generation:
    log.info("generation cancelled after %d tokens: the client left", tokens)
    gen = Generation(text, prompt_tokens, tokens, time.perf_counter() - started, "cancelled")
    gen.queue_seconds = started - submitted
    return gen


def _refused(url: str, name: str, r: Any) -> ApiError:
    """A backend's non-200 as a 502 to the client (the server's setup, not the request, is at fault;
    it was a 400) with the backend's own words, and a log line for whoever runs the server (there
    was none); the log gets the status only, as the backend's text may quote the prompt."""
    r.read()
    log.warning("the backend at %s answered %d for model %r: 502", url, r.status_code, name)
    hint = " (is a model of that name served there?)" if r.status_code == 404 else ""
    return ApiError(
        502, f"the generation backend answered {r.status_code} for model {name!r}{hint}: {r.text[:200]}"
    )


def _model_ids(r: object) -> list[str] | None:
    """The model ids of a ``/v1/models`` answer, or None when it is not one (then nothing is checked)."""
    try:
        data = r.json()["data"] if r.status_code == 200 else None  # type: ignore[attr-defined]
        return None if data is None else [str(m["id"]) for m in data]
    except (ValueError, KeyError, TypeError):
        return None


def _max_positions(base: Path) -> int | None:
    """The base's ``max_position_embeddings`` from its config.json (None when it has none)."""
    try:
        cfg = json.loads((base / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TwinError(
            f"{base / 'config.json'}: cannot read the base's config ({e}); give --base DIR"
        ) from None
    return cfg.get("max_position_embeddings") or (cfg.get("text_config") or {}).get("max_position_embeddings")
