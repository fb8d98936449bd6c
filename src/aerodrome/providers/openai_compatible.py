"""The ``openai`` provider kind: any server speaking OpenAI's Chat Completions API.

OpenAI, Azure OpenAI (v1 routes), vLLM, Ollama, LM Studio, TGI's OpenAI routes.
Responses pass through unchanged; streams are parsed line by line so that
usage, malformed events and disconnects are seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from aerodrome.config import DeploymentConfig
from aerodrome.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from aerodrome.providers.base import Provider, ProviderContext

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


def upstream_message(status: int, raw: bytes) -> str:
    """The upstream's own error message when it sent one in OpenAI's shape."""
    try:
        data = orjson.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
    except orjson.JSONDecodeError:
        pass
    text = raw.decode("utf-8", "replace").strip()
    return text[:200] or f"HTTP {status}"


def status_error(status: int, raw: bytes, name: str) -> UpstreamError:
    message = f"upstream answered {status}: {upstream_message(status, raw)}"
    if status in RETRYABLE_STATUS or status >= 500:
        return UpstreamError(message, code=f"upstream_{status}", retryable=True, upstream_status=status)
    if status in (401, 403):
        # Our credentials for the provider are wrong: not the caller's fault, not retryable.
        return UpstreamError(
            f"provider {name} refused our credentials ({status})",
            code="upstream_auth",
            retryable=False,
            upstream_status=status,
        )
    return UpstreamRejected(message, code="upstream_rejected", retryable=False, upstream_status=status)


class OpenAICompatibleProvider:
    kind = "openai"

    def __init__(self, ctx: ProviderContext) -> None:
        self._http = ctx.http
        self._name = ctx.config.name
        base = (ctx.config.base_url or "https://api.openai.com/v1").rstrip("/")
        self._chat_url = base + "/chat/completions"
        self._embeddings_url = base + "/embeddings"
        headers = {"Content-Type": "application/json", **ctx.config.headers}
        if ctx.api_key:
            headers["Authorization"] = f"Bearer {ctx.api_key}"
        self._headers = headers
        self._timeouts: dict[tuple[float, bool], aiohttp.ClientTimeout] = {}

    def _timeout(self, dep: DeploymentConfig, stream: bool) -> aiohttp.ClientTimeout:
        key = (dep.timeout_s, stream)  # by value: a deployment changed through the API keeps no stale timeout
        t = self._timeouts.get(key)
        if t is None:
            if stream:  # a stream may last long; what must not is the wait for the next bytes
                t = aiohttp.ClientTimeout(total=None, sock_connect=dep.timeout_s, sock_read=dep.timeout_s)
            else:
                t = aiohttp.ClientTimeout(total=dep.timeout_s)
            self._timeouts[key] = t
        return t

    async def _post_json(self, url: str, dep: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http.post(
                url, data=orjson.dumps(body), headers=self._headers, timeout=self._timeout(dep, False)
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise status_error(resp.status, raw, self._name)
        except TimeoutError:
            raise UpstreamTimeout(f"no answer within {dep.timeout_s:g} s", code="upstream_timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"connection failed: {type(exc).__name__}: {exc}"[:300], code="upstream_connection"
            ) from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("upstream sent a body that is not JSON", code="malformed_response") from None
        if not isinstance(data, dict):
            raise UpstreamError("upstream sent JSON that is not an object", code="malformed_response")
        return data

    async def chat(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._post_json(self._chat_url, deployment, body)
        if not isinstance(data.get("choices"), list):
            raise UpstreamError("upstream answer has no choices", code="malformed_response")
        return data

    async def embeddings(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        data = await self._post_json(self._embeddings_url, deployment, body)
        if not isinstance(data.get("data"), list):
            raise UpstreamError("upstream embeddings answer has no data", code="malformed_response")
        return data

    async def chat_stream(
        self, deployment: DeploymentConfig, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        yielded = False
        resp: aiohttp.ClientResponse | None = None
        try:
            try:
                resp = await self._http.post(
                    self._chat_url,
                    data=orjson.dumps(body),
                    headers=self._headers,
                    timeout=self._timeout(deployment, True),
                )
                if resp.status != 200:
                    raise status_error(resp.status, await resp.read(), self._name)
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue  # blank separators, comments, event names
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        return
                    try:
                        chunk = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        raise UpstreamError(
                            "upstream sent a malformed stream event",
                            code="malformed_stream",
                            retryable=not yielded,
                        ) from None
                    if not isinstance(chunk, dict):
                        raise UpstreamError(
                            "upstream stream event is not an object",
                            code="malformed_stream",
                            retryable=not yielded,
                        )
                    if "error" in chunk and "choices" not in chunk:
                        raise UpstreamError(
                            f"upstream error mid-stream: {upstream_message(500, payload)}",
                            code="upstream_stream_error",
                            retryable=not yielded,
                        )
                    yielded = True
                    yield chunk
                raise UpstreamError(
                    "upstream closed the stream before [DONE]", code="truncated_stream", retryable=not yielded
                )
            except TimeoutError:
                raise UpstreamTimeout(
                    f"no data within {deployment.timeout_s:g} s",
                    code="upstream_timeout",
                    retryable=not yielded,
                ) from None
            except aiohttp.ClientError as exc:
                raise UpstreamError(
                    f"connection failed: {type(exc).__name__}"[:300],
                    code="upstream_connection",
                    retryable=not yielded,
                ) from None
        finally:
            if resp is not None:
                if resp.content.at_eof():
                    resp.release()
                else:
                    resp.close()  # the client went away or we failed: drop the upstream connection now

    async def aclose(self) -> None:
        await asyncio.sleep(0)


def factory(ctx: ProviderContext) -> Provider:
    return OpenAICompatibleProvider(ctx)
