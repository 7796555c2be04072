"""The twin server seen from ``twin drafts``: ``POST /reply`` over HTTP, like the web page does."""

from __future__ import annotations

import logging
from typing import Any

from twin.errors import TwinError

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 5.0


class ServerUnavailable(Exception):
    """Down, unreachable, timed out or answering 5xx: retry later. The message never holds chat text."""


class RequestRefused(Exception):
    """A 4xx other than auth (e.g. 422): this request will not succeed; drop the suggestion."""


def check_server(url: str, token: str | None, adapter: str | None, max_new_tokens: int | None) -> None:
    """Ask the server once at start (before the Telegram login) what every suggestion would find out
    only at someone's first message, maybe hours later, then drop: a refused token, an ``--adapter``
    it does not serve, a ``--max-new-tokens`` over its cap, a URL that is not ``twin serve``.
    A server not up yet is fine (suggestions wait for it): one warning."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=PROBE_TIMEOUT_S, trust_env=False) as http:
            listed, health = http.get("/adapters"), http.get("/healthz")
    except httpx.HTTPError as e:
        log.warning("the twin server at %s does not answer yet (%s); suggestions wait for it (`make serve`)",
                    url, type(e).__name__)  # fmt: skip
        return
    if listed.status_code in (401, 403):
        what = "refused the token" if token else "needs a token and none is set"
        raise TwinError(f"{url} {what} ({listed.status_code}): set TWIN_API_TOKEN to the server's value")
    if listed.status_code >= 500:
        log.warning("the twin server at %s answered %d; suggestions wait for it", url, listed.status_code)
        return
    names = _served(listed)
    if names is None:
        raise TwinError(
            f"--server {url}: not a twin server (GET /adapters answered {listed.status_code}); "
            "give the URL `twin serve` prints (make serve: http://127.0.0.1:8000)"
        )
    if adapter is not None and adapter not in names:
        raise TwinError(f"--adapter {adapter}: {url} does not serve it; it serves: {', '.join(names)}")
    cap = _limit(health, "max_new_tokens")
    if max_new_tokens is not None and cap is not None and max_new_tokens > cap:
        raise TwinError(
            f"--max-new-tokens {max_new_tokens}: the server allows at most {cap}; give {cap} or less"
        )


def _served(r: Any) -> list[str] | None:
    """The adapter names of a ``GET /adapters`` answer, or None when it is not twin's."""
    try:
        return [str(a["name"]) for a in r.json()["adapters"]] if r.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        return None


def _limit(r: Any, key: str) -> int | None:
    try:
        value = r.json()["limits"][key]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


class TwinServer:
    """An ``httpx.AsyncClient`` on ``--server`` with the bearer token of ``$TWIN_API_TOKEN``."""

    def __init__(self, url: str, token: str | None, timeout_s: float, defaults: dict | None = None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
        self._http = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s, trust_env=False)

    async def reply(self, payload: dict) -> dict:
        """The server's JSON answer (``reply``, ``usage``, ``latency_s``...)."""
        import httpx

        try:
            r = await self._http.post("/reply", json={**self.defaults, **payload})
        except httpx.HTTPError as e:
            raise ServerUnavailable(f"{self.url} unreachable ({type(e).__name__})") from None
        if r.status_code in (401, 403):
            raise TwinError(
                f"{self.url} refused the token ({r.status_code}): set TWIN_API_TOKEN to the server's value"
            )
        if r.status_code >= 500:
            raise ServerUnavailable(f"{self.url} answered {r.status_code}")
        if r.status_code != 200:
            raise RequestRefused(f"{self.url} refused the request ({r.status_code}{_field(r)})")
        return r.json()

    async def close(self) -> None:
        await self._http.aclose()


def _field(r: Any) -> str:
    """The field a 4xx names (``error.param``), never the value sent."""
    try:
        param = r.json()["error"].get("param")
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    return f", field {param}" if param else ""
