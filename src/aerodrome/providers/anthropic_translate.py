"""OpenAI chat ⇄ Anthropic Messages translation. Pure: no I/O, no clock except ``created``.

* :func:`to_anthropic_request` — an OpenAI ``chat.completions`` body → a Messages body;
* :func:`from_anthropic_response` — a Messages response → a ``chat.completion`` dict;
* :class:`SSEParser` — bytes → ``(event, data)`` pairs, fed incrementally;
* :class:`StreamTranslator` — Messages stream events → ``chat.completion.chunk`` dicts.

A request Anthropic cannot express raises ``UpstreamRejected`` (the caller's fault);
a response or event that is not what the protocol promises raises ``UpstreamError``.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from aerodrome.config import DeploymentConfig
from aerodrome.errors import UpstreamError, UpstreamRejected


def _reject(message: str, code: str = "unsupported_parameter", param: str | None = None) -> UpstreamRejected:
    err = UpstreamRejected(f"anthropic: {message}", code=code, retryable=False)
    err.param = param
    return err


def finish_reason(stop_reason: str | None) -> str | None:
    """Anthropic ``stop_reason`` → OpenAI ``finish_reason``."""
    if stop_reason is None:
        return None
    return {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    }.get(stop_reason, "stop")


def _text_of(content: Any, where: str) -> str:
    """System / tool message content (string or text parts) → one string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _reject(f"{where} may only contain text parts", "unsupported_content", "messages")
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise _reject(f"{where} content must be a string or a list of parts", "invalid_request", "messages")


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _reject("image_url.url is required", "invalid_request", "messages")
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise _reject("image data URLs must be base64-encoded", "unsupported_content", "messages")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _reject("image_url must be an http(s) or data: URL", "unsupported_content", "messages")


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _reject(
            "user message content must be a string or a list of parts", "invalid_request", "messages"
        )
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            blocks.append(_image_block(part))
        else:
            raise _reject(f"content part type {kind!r} is not supported", "unsupported_content", "messages")
    return blocks


def _assistant_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    text = _text_of(msg.get("content"), "assistant message")
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for call in msg.get("tool_calls") or []:
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            raise _reject("tool calls must be objects with a function", "invalid_tool_arguments", "messages")
        fn = call["function"]
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            raise _reject("tool call arguments must be JSON", "invalid_tool_arguments", "messages") from None
        if not isinstance(args, dict) or not call.get("id") or not fn.get("name"):
            raise _reject("tool calls need an id, a name and JSON object arguments", "invalid_tool_arguments")
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"], "input": args})
    return blocks


def _messages(openai_messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(openai_messages, list) or not openai_messages:
        raise _reject("messages must be a non-empty list", "invalid_request", "messages")
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for msg in openai_messages:
        role = msg.get("role") if isinstance(msg, dict) else None
        if role in ("system", "developer"):
            system.append(_text_of(msg.get("content"), f"{role} message"))
            continue
        if role == "user":
            blocks, anthropic_role = _user_blocks(msg.get("content")), "user"
        elif role == "assistant":
            blocks, anthropic_role = _assistant_blocks(msg), "assistant"
        elif role == "tool":
            if not msg.get("tool_call_id"):
                raise _reject("tool messages need a tool_call_id", "invalid_request", "messages")
            result = {"type": "tool_result", "tool_use_id": msg["tool_call_id"]}
            blocks, anthropic_role = (
                [result | {"content": _text_of(msg.get("content"), "tool message")}],
                "user",
            )
        else:
            raise _reject(f"message role {role!r} is not supported", "invalid_request", "messages")
        if not blocks:
            continue  # Anthropic refuses empty content
        if out and out[-1]["role"] == anthropic_role:  # Anthropic wants alternating turns: merge
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": anthropic_role, "content": blocks})
    if not out:
        raise _reject(
            "at least one non-system message with content is required", "invalid_request", "messages"
        )
    return system, out


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not fn.get("name"):
            raise _reject("only function tools with a name are supported", "unsupported_tool", "tools")
        spec: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            spec["description"] = fn["description"]
        spec["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        out.append(spec)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        result: dict[str, Any] = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        result = {"type": "any"}
    elif (
        isinstance(choice, dict)
        and isinstance(choice.get("function"), dict)
        and choice["function"].get("name")
    ):
        result = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise _reject(
            "tool_choice must be 'auto', 'none', 'required' or a named function", param="tool_choice"
        )
    if parallel is False:
        result["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return result


def to_anthropic_request(body: dict[str, Any], deployment: DeploymentConfig) -> dict[str, Any]:
    """OpenAI chat request → Anthropic Messages request (without ``stream``)."""
    if (body.get("n") or 1) != 1:
        raise _reject("n > 1 is not supported", param="n")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise _reject("response_format other than 'text' is not supported", param="response_format")
    system, messages = _messages(body.get("messages"))
    requested = body.get("max_completion_tokens") or body.get("max_tokens")
    max_tokens = deployment.max_output_tokens
    if isinstance(requested, int) and requested > 0:
        max_tokens = min(requested, max_tokens)
    out: dict[str, Any] = {"model": body["model"], "max_tokens": max_tokens, "messages": messages}
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    tools = body.get("tools")
    if tools:
        out["tools"] = _tools(tools)
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    return out


def usage(raw: Any) -> dict[str, Any] | None:
    """Anthropic usage → OpenAI usage; prompt tokens include cache reads and writes."""
    if not isinstance(raw, dict) or ("input_tokens" not in raw and "output_tokens" not in raw):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + cached + int(raw.get("cache_creation_input_tokens") or 0)
    completion = int(raw.get("output_tokens") or 0)
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    out["total_tokens"] = prompt + completion
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def from_anthropic_response(data: Any) -> dict[str, Any]:
    """Anthropic Messages response → OpenAI ``chat.completion``."""
    if (
        not isinstance(data, dict)
        or data.get("type") != "message"
        or not isinstance(data.get("content"), list)
    ):
        raise UpstreamError("anthropic: unexpected response shape", code="malformed_response")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            fn = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": fn})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": finish_reason(data.get("stop_reason")) or "stop",
    }
    out: dict[str, Any] = {
        "id": str(data.get("id", "")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(data.get("model", "")),
        "choices": [choice],
    }
    converted = usage(data.get("usage"))
    if converted is not None:
        out["usage"] = converted
    return out


class SSEParser:
    """Incremental Server-Sent Events parser: ``feed(bytes)`` → complete ``(event, data)`` pairs."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self._buffer += chunk
        events: list[tuple[str, str]] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                return events
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not line:
                if self._data or self._event:
                    events.append((self._event or "message", "\n".join(self._data)))
                self._event, self._data = "", []
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    self._event = value
                elif field == "data":
                    self._data.append(value)


def _stream_error(data: dict[str, Any]) -> UpstreamError:
    raw = data.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kind = str(error.get("type", "api_error"))
    message = f"anthropic stream error ({kind}): {error.get('message', '')}"
    retryable = kind in ("overloaded_error", "api_error", "rate_limit_error")
    return UpstreamError(message, code="upstream_stream_error", retryable=retryable)


class StreamTranslator:
    """Anthropic Messages stream events → OpenAI ``chat.completion.chunk`` dicts.

    After ``message_stop`` it emits the finish chunk, then a ``choices: []`` chunk with
    ``usage`` when the upstream reported any; ``done`` becomes true.
    """

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.done = False
        self._usage: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # content block index → OpenAI tool call index
        self._finish: str | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        head = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        return head | {"choices": [choice]}

    def feed(self, event: str, data: str) -> list[dict[str, Any]]:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"anthropic: malformed stream event {event!r}", code="malformed_stream"
            ) from None
        if not isinstance(payload, dict):
            raise UpstreamError("anthropic: stream event is not an object", code="malformed_stream")
        kind = payload.get("type", event)
        try:
            return self._on(kind, payload)
        except (KeyError, TypeError, AttributeError):
            raise UpstreamError(f"anthropic: unexpected {kind!r} event", code="malformed_stream") from None

    def _on(self, kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        if kind == "message_start":
            message = payload["message"]
            self.id, self.model = str(message.get("id", "")), str(message.get("model", ""))
            self._usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = payload["content_block"]
            if block.get("type") == "tool_use":
                index = self._tool_index.setdefault(payload["index"], len(self._tool_index))
                fn = {"name": block["name"], "arguments": ""}
                call = {"index": index, "id": block["id"], "type": "function", "function": fn}
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = payload["delta"]
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta["text"]})]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                call = {
                    "index": self._tool_index[payload["index"]],
                    "function": {"arguments": delta["partial_json"]},
                }
                return [self._chunk({"tool_calls": [call]})]
            return []  # thinking, signatures, citations
        if kind == "message_delta":
            self._finish = finish_reason((payload.get("delta") or {}).get("stop_reason"))
            self._usage.update(payload.get("usage") or {})
            return []
        if kind == "message_stop":
            self.done = True
            chunks = [self._chunk({}, self._finish or "stop")]
            converted = usage(self._usage)
            if converted is not None:
                chunks.append(self._chunk({}) | {"choices": [], "usage": converted})
            return chunks
        if kind == "error":
            raise _stream_error(payload)
        return []  # ping, content_block_stop, and event types added later
