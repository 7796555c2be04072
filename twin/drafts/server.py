"""The twin server seen from ``twin drafts``: ``POST /reply`` over HTTP, like the web page does."""

from __future__ import annotations

from typing import Any

from twin.errors import TwinError


class ServerUnavailable(Exception):
    """Down, unreachable, timed out or answering 5xx: retry later. The message never holds chat text."""


class RequestRefused(Exception):
    """A 4xx other than auth (e.g. 422): this request will not succeed; drop the suggestion."""


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
