"""Reading and validating OpenAI-shaped request bodies (cheap checks, clear errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from aerodrome.errors import BadRequest, InvalidJSON, PayloadTooLarge

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


async def read_body(stream: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if declared > limit:
            raise PayloadTooLarge(f"the request body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidJSON("the request body is empty; send a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidJSON("the request body must be a JSON object")
    return data


def _type_error(param: str, expected: str, value: Any) -> BadRequest:
    return BadRequest(
        f"{param} must be {expected}, not {type(value).__name__}", param=param, code="invalid_type"
    )


def _check_optional(body: dict[str, Any], name: str, types: tuple[type, ...], expected: str) -> None:
    value = body.get(name)
    if value is not None and (
        not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
    ):
        raise _type_error(name, expected, value)


def validate_chat(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise BadRequest("model is required", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise _type_error("model", "a non-empty string", model)
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("messages is required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list):
        raise _type_error("messages", "an array", messages)
    if not messages:
        raise BadRequest("messages must not be empty", param="messages", code="empty_array")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _type_error(f"messages[{i}]", "an object", msg)
        role = msg.get("role")
        if role not in CHAT_ROLES:
            raise BadRequest(
                f"messages[{i}].role must be one of {sorted(CHAT_ROLES)}",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        content = msg.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _type_error(f"messages[{i}].content", "a string or an array of parts", content)
        if content is None and role not in ("assistant", "function") and not msg.get("tool_calls"):
            raise BadRequest(
                f"messages[{i}].content is required",
                param=f"messages[{i}].content",
                code="missing_required_parameter",
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _type_error("stream", "a boolean", stream)
    _check_optional(body, "max_tokens", (int,), "an integer")
    _check_optional(body, "max_completion_tokens", (int,), "an integer")
    _check_optional(body, "temperature", (int, float), "a number")
    _check_optional(body, "top_p", (int, float), "a number")
    _check_optional(body, "n", (int,), "an integer")
    _check_optional(body, "tools", (list,), "an array")
    _check_optional(body, "stream_options", (dict,), "an object")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if isinstance(value, int) and value < 1:
            raise BadRequest(f"{name} must be at least 1", param=name, code="invalid_value")


def validate_embeddings(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise BadRequest("model is required", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise _type_error("model", "a non-empty string", model)
    if "input" not in body:
        raise BadRequest("input is required", param="input", code="missing_required_parameter")
    value = body["input"]
    if isinstance(value, str):
        if not value:
            raise BadRequest("input must not be empty", param="input", code="invalid_value")
        return
    if not isinstance(value, list) or not value:
        raise BadRequest("input must be a string or a non-empty array", param="input", code="invalid_type")
    if len(value) > 2048:
        raise BadRequest("input may hold at most 2048 items", param="input", code="invalid_value")
    _check_optional(body, "encoding_format", (str,), "a string")


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                total += len(text) if isinstance(text, str) else 256  # images, audio: a flat guess
        return total
    return 0


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """A cheap over-estimate of prompt tokens (≈ 4 characters a token, plus framing)."""
    chars = 0
    count = 0
    for msg in body.get("messages") or ():
        count += 1
        chars += _content_chars(msg.get("content"))
        for call in msg.get("tool_calls") or ():
            chars += len(orjson.dumps(call))
    if body.get("tools"):
        chars += len(orjson.dumps(body["tools"]))
    inp = body.get("input")
    if isinstance(inp, str):
        chars += len(inp)
    elif isinstance(inp, list):
        chars += sum(len(x) if isinstance(x, str) else 4 * len(x) if isinstance(x, list) else 4 for x in inp)
    return chars // 4 + 4 * count + 3


def estimate_text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def requested_max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return value if isinstance(value, int) else None
