"""The Anthropic provider: OpenAI-shaped calls on the Anthropic Messages API.

Config: ``ProviderConfig(kind="anthropic", base_url=..., api_key=..., headers=...)``.
``base_url`` defaults to ``https://api.anthropic.com/v1``; the provider posts to
``{base_url}/messages``. ``headers`` are added to every request (e.g. ``anthropic-beta``)
and may override ``anthropic-version``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from aerodrome.config import DeploymentConfig
from aerodrome.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from aerodrome.providers.anthropic_translate import (
    SSEParser,
    StreamTranslator,
    from_anthropic_response,
    to_anthropic_request,
)
from aerodrome.providers.base import Provider, ProviderContext

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"


def _upstream_message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace").strip() or "(empty body)"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return raw[:200].decode("utf-8", "replace")


def status_error(status: int, raw: bytes) -> UpstreamError:
    """An HTTP error status from Anthropic → the matching error of ``aerodrome.errors``."""
    message = f"anthropic: HTTP {status}: {_upstream_message(raw)}"
    if status == 429:
        return UpstreamError(message, code="upstream_rate_limited", upstream_status=status)
    if status == 529:
        return UpstreamError(message, code="upstream_overloaded", upstream_status=status)
    if status >= 500 or status == 408:
        return UpstreamError(message, upstream_status=status)
    if status in (401, 403):
        # The gateway's credentials, not the caller's request: another deployment may work.
        return UpstreamError(message, code="upstream_auth_failed", upstream_status=status)
    return UpstreamRejected(message, retryable=False, upstream_status=status)


class AnthropicProvider:
    kind = "anthropic"

    def __init__(self, ctx: ProviderContext) -> None:
        self._http = ctx.http
        self._url = (ctx.config.base_url or DEFAULT_BASE_URL).rstrip("/") + "/messages"
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        headers.update(ctx.config.headers)
        if ctx.api_key:
            headers["x-api-key"] = ctx.api_key
        self._headers = headers

    async def _post(self, payload: dict[str, Any], timeout: aiohttp.ClientTimeout) -> aiohttp.ClientResponse:
        """Send the request; a response with an error status becomes an exception."""
        try:
            resp = await self._http.post(
                self._url, data=orjson.dumps(payload), headers=self._headers, timeout=timeout
            )
        except TimeoutError:
            raise UpstreamTimeout(
                f"anthropic: no response within {timeout.total or timeout.sock_read}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"anthropic: connection failed ({type(exc).__name__})") from None
        if resp.status >= 400:
            try:
                raw = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                raw = b""
            finally:
                resp.release()
            raise status_error(resp.status, raw)
        return resp

    async def chat(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        payload = to_anthropic_request(body, deployment)
        resp = await self._post(payload, aiohttp.ClientTimeout(total=deployment.timeout_s))
        try:
            raw = await resp.read()
        except TimeoutError:
            raise UpstreamTimeout(f"anthropic: no complete response within {deployment.timeout_s}s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"anthropic: response interrupted ({type(exc).__name__})") from None
        finally:
            resp.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("anthropic: response is not JSON", code="malformed_response") from None
        return from_anthropic_response(data)

    async def chat_stream(
        self, deployment: DeploymentConfig, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks as they arrive. Closing the iterator early drops the upstream connection.

        A failure after the first chunk was yielded is never retryable: a retry would
        repeat what the client already received.
        """
        payload = to_anthropic_request(body, deployment) | {"stream": True}
        # No total limit on a stream: ``timeout_s`` bounds the connect and each silence.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=deployment.timeout_s, sock_read=deployment.timeout_s
        )
        resp = await self._post(payload, timeout)
        parser = SSEParser()
        translator = StreamTranslator()
        yielded = False
        finished = False
        try:
            while True:
                try:
                    data = await resp.content.readany()
                except TimeoutError:
                    message = f"anthropic: stream silent for {deployment.timeout_s}s"
                    raise UpstreamTimeout(message, retryable=not yielded) from None
                except aiohttp.ClientError as exc:
                    message = f"anthropic: stream interrupted ({type(exc).__name__})"
                    raise UpstreamError(message, code="stream_interrupted", retryable=not yielded) from None
                if not data:
                    break
                for event, text in parser.feed(data):
                    if translator.done:
                        break
                    try:
                        chunks = translator.feed(event, text)
                    except UpstreamError as exc:
                        exc.retryable = exc.retryable and not yielded
                        raise
                    for chunk in chunks:
                        yield chunk
                        yielded = True
            if not translator.done:
                message = "anthropic: stream ended before message_stop"
                raise UpstreamError(message, code="stream_interrupted", retryable=not yielded)
            finished = True
        finally:
            if finished:
                resp.release()  # body read to the end: the connection goes back to the pool
            else:
                resp.close()  # consumer went away or the stream broke: drop the connection now

    async def embeddings(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamRejected(
            "anthropic has no embeddings endpoint", code="unsupported_endpoint", retryable=False
        )

    async def aclose(self) -> None:
        """Nothing to release: the HTTP session belongs to the caller."""


def factory(ctx: ProviderContext) -> Provider:
    return AnthropicProvider(ctx)
