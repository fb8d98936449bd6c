"""Posting one alert message to a webhook (the only HTTP of alerting)."""

from __future__ import annotations

import aiohttp
import orjson

from aerodrome.catalog.secrets import resolve_secret
from aerodrome.config import WebhookConfig
from aerodrome.errors import ConfigError


class WebhookFailed(Exception):
    """The receiver did not take the message: refused, unreachable or too slow."""


def webhook_url(hook: WebhookConfig, base_dir: object = None) -> str:
    """The URL, read from its secret reference at each delivery (a rotated secret is picked up)."""
    if hook.url is not None:
        return hook.url
    url = resolve_secret(hook.url_ref, base_dir=base_dir)  # type: ignore[arg-type]
    if not url:
        raise ConfigError(f"webhook {hook.name}: its url_ref {hook.url_ref} is empty or not set")
    return url


async def post(
    http: aiohttp.ClientSession, hook: WebhookConfig, payload: dict[str, object], *, base_dir: object = None
) -> None:
    try:
        url = webhook_url(hook, base_dir)
    except ConfigError as exc:
        raise WebhookFailed(exc.message) from None
    try:
        async with http.post(
            url,
            data=orjson.dumps(payload),
            headers={"content-type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=hook.timeout_s),
        ) as resp:
            if resp.status >= 300:
                body = (await resp.text())[:200]
                raise WebhookFailed(f"HTTP {resp.status}: {body}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WebhookFailed(f"{type(exc).__name__}: {exc}"[:300]) from None
