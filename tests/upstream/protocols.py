"""Wire formats of the mock upstream: deterministic answers in OpenAI's and Anthropic's shapes.

Pure functions, no I/O: the server in ``server.py`` validates, calls these and writes bytes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
import struct
import time
from collections.abc import Mapping
from typing import Any

import orjson

TOOL_TRIGGER = "call a tool"
ANTHROPIC_VERSION = "2023-06-01"
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ANTHROPIC_TOP_LEVEL = frozenset(
    {"model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream", "temperature"}
    | {"top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers"}
)
ANTHROPIC_BLOCKS = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking"})


def words(text: str) -> int:
    return len(text.split())


@dataclasses.dataclass
class Plan:
    """What the mock model answers, independent of the wire format."""

    text: str
    finish: str  # "stop" | "length" | "stop_sequence" | "tool"
    prompt_tokens: int
    tool_name: str | None = None
    tool_args: str = ""  # JSON text
    stop_sequence: str | None = None

    @property
    def completion_tokens(self) -> int:
        return words(self.text) + words(self.tool_args.replace(",", " "))

    def text_pieces(self) -> list[str]:
        parts = self.text.split(" ")
        return [parts[0]] + [" " + w for w in parts[1:]] if self.text else []

    def call_id(self, prefix: str) -> str:
        return prefix + hashlib.sha1(f"{self.tool_name}{self.tool_args}".encode()).hexdigest()[:24]


def _args_for(schema: Any, text: str) -> str:
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    by_type = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}
    args = {
        name: text if (spec or {}).get("type", "string") == "string" else by_type.get(spec.get("type"))
        for name, spec in props.items()
    }
    return orjson.dumps(args).decode()


def _plan(
    *,
    last_text: str,
    tool_result: str | None,
    tools: list[tuple[str, Any]],
    forced: str | None,  # a tool name, "*" for any tool, None for auto
    no_tools: bool,
    max_tokens: int | None,
    stops: list[str],
    prompt_tokens: int,
) -> Plan:
    if tool_result is None and tools and not no_tools and (forced or TOOL_TRIGGER in last_text.lower()):
        name, schema = next(((n, s) for n, s in tools if n == forced), tools[0])
        return Plan(f"I will call {name}.", "tool", prompt_tokens, name, _args_for(schema, last_text))
    text = f"Tool result: {tool_result}" if tool_result is not None else f"Echo: {last_text}"
    plan = Plan(text, "stop", prompt_tokens)
    for stop in stops:
        if stop and stop in plan.text:
            plan.text, plan.finish, plan.stop_sequence = (
                plan.text[: plan.text.index(stop)],
                "stop_sequence",
                stop,
            )
    if max_tokens is not None and words(plan.text) > max_tokens:
        plan.text, plan.finish = " ".join(plan.text.split(" ")[:max_tokens]), "length"
    return plan


def validate_openai_chat(body: dict[str, Any]) -> str | None:
    msgs = body.get("messages")
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    if not isinstance(msgs, list) or not msgs:
        return "'messages' must be a non-empty array"
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict) or msg.get("role") not in {
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
        }:
            return f"Invalid value for 'messages[{i}].role'"
    return None


def openai_plan(body: dict[str, Any]) -> Plan:
    msgs = body["messages"]
    last = msgs[-1]
    user_texts = [_text(m.get("content")) for m in msgs if m.get("role") == "user"]
    tools = [(t["function"]["name"], t["function"].get("parameters")) for t in body.get("tools") or []]
    choice = body.get("tool_choice")
    forced = (
        choice["function"]["name"] if isinstance(choice, dict) else ("*" if choice == "required" else None)
    )
    stop = body.get("stop") or []
    return _plan(
        last_text=user_texts[-1] if user_texts else "",
        tool_result=_text(last.get("content")) if last.get("role") == "tool" else None,
        tools=tools,
        forced=forced,
        no_tools=choice == "none",
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        stops=[stop] if isinstance(stop, str) else stop,
        prompt_tokens=sum(words(_text(m.get("content"))) for m in msgs),
    )


def _openai_usage(plan: Plan) -> dict[str, int]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    }


def _openai_finish(plan: Plan) -> str:
    return {"tool": "tool_calls", "length": "length"}.get(plan.finish, "stop")


def openai_chat_response(
    body: dict[str, Any], *, omit_usage: bool = False, reply: str | None = None
) -> dict[str, Any]:
    plan = openai_plan(body)
    if reply is not None:
        plan = dataclasses.replace(plan, text=reply, finish="stop", tool_name=None)
    message: dict[str, Any] = {"role": "assistant", "content": plan.text, "refusal": None}
    if plan.tool_name:
        message["content"] = None
        fn = {"name": plan.tool_name, "arguments": plan.tool_args}
        message["tool_calls"] = [{"id": plan.call_id("call_"), "type": "function", "function": fn}]
    out: dict[str, Any] = {
        "id": "chatcmpl-mock" + hashlib.sha1(orjson.dumps(body)).hexdigest()[:16],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_mock",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _openai_finish(plan)}
        ],
    }
    if not omit_usage:
        out["usage"] = _openai_usage(plan)
    return out


def _sse(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def openai_chat_stream(
    body: dict[str, Any], *, include_usage: bool, piece_chars: int | None = None
) -> list[bytes]:
    """The answer as chunks: a word each, or ``piece_chars`` characters each when given."""
    plan = openai_plan(body)
    base = {"id": "chatcmpl-mockstream", "object": "chat.completion.chunk", "created": int(time.time())}
    base |= {"model": body["model"], "system_fingerprint": "fp_mock"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        out = base | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return _sse(out | {"usage": None} if include_usage else out)

    if plan.tool_name:
        call = {"index": 0, "id": plan.call_id("call_"), "type": "function"}
        call["function"] = {"name": plan.tool_name, "arguments": ""}
        events = [chunk({"role": "assistant", "content": None, "tool_calls": [call], "refusal": None})]
        for i in range(0, len(plan.tool_args), 8):
            fragment = {"index": 0, "function": {"arguments": plan.tool_args[i : i + 8]}}
            events.append(chunk({"tool_calls": [fragment]}))
    else:
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        pieces = (
            [plan.text[i : i + piece_chars] for i in range(0, len(plan.text), piece_chars)]
            if piece_chars
            else plan.text_pieces()
        )
        events += [chunk({"content": piece}) for piece in pieces]
    events.append(chunk({}, _openai_finish(plan)))
    if include_usage:
        events.append(_sse(base | {"choices": [], "usage": _openai_usage(plan)}))
    events.append(b"data: [DONE]\n\n")
    return events


def embedding_vector(text: str, dims: int = 8) -> list[float]:
    raw = b""
    counter = 0
    while len(raw) < dims * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [(int.from_bytes(raw[i * 4 : i * 4 + 4], "big") / 2**31) - 1.0 for i in range(dims)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def openai_embeddings(body: dict[str, Any], *, omit_usage: bool = False) -> dict[str, Any] | str:
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
        return "'input' must be a non-empty string or a non-empty array of non-empty strings"
    dims = body.get("dimensions") or 8
    data = []
    for i, text in enumerate(inputs):
        vector: Any = embedding_vector(text, dims)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    out: dict[str, Any] = {"object": "list", "data": data, "model": body.get("model")}
    if not omit_usage:
        tokens = sum(words(t) for t in inputs)
        out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return out


def openai_models(models: tuple[str, ...]) -> dict[str, Any]:
    data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"} for m in models]
    return {"object": "list", "data": data}


def check_anthropic_headers(headers: Mapping[str, str], api_key: str | None) -> tuple[int, str] | None:
    if api_key is not None and headers.get("x-api-key") != api_key:
        return 401, "invalid x-api-key"
    if not headers.get("anthropic-version"):
        return 400, "anthropic-version: header is required"
    return None


def _text(content: Any) -> str:
    """The text of an OpenAI or Anthropic content: a string, or parts / blocks (tool results too)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text(b.get("text", b.get("content"))) for b in content if isinstance(b, dict))
    return ""


def validate_anthropic(body: dict[str, Any]) -> str | None:
    """The checks the real API makes that a translation bug would trip."""
    extra = sorted(set(body) - ANTHROPIC_TOP_LEVEL)
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required (a positive integer)"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: range: 0..1"
    if not isinstance(body.get("system", ""), (str, list)):
        return "system: Input should be a valid string or list of text blocks"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "messages: at least one message is required"
    tool_ids: set[str] = set()
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict) or msg.get("role") not in {"user", "assistant"}:
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = msg.get("content")
        if content == "" or content == []:
            return f"messages.{i}: all messages must have non-empty content"
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            return f"messages.{i}.content: Input should be a valid list"
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in ANTHROPIC_BLOCKS:
                return f"messages.{i}.content.{j}.type: Input tag {kind!r} does not match the expected tags"
            if kind == "tool_use":
                if not isinstance(block.get("input"), dict) or not block.get("id") or not block.get("name"):
                    return f"messages.{i}.content.{j}: tool_use needs id, name and an object input"
                tool_ids.add(block["id"])
            if kind == "tool_result" and block.get("tool_use_id") not in tool_ids:
                return f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks"
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
            return f"tools.{i}: name and input_schema are required"
    choice = body.get("tool_choice")
    if choice is not None and choice.get("type") not in {"auto", "any", "tool", "none"}:
        return "tool_choice.type: Input tag does not match any of the expected tags"
    return None


def anthropic_plan(body: dict[str, Any]) -> Plan:
    msgs = body["messages"]
    last = msgs[-1]
    results = (
        [b for b in last["content"] if b.get("type") == "tool_result"]
        if isinstance(last["content"], list)
        else []
    )
    user_texts = [_text(m["content"]) for m in msgs if m["role"] == "user"]
    tools = [(t["name"], t["input_schema"]) for t in body.get("tools") or []]
    choice = body.get("tool_choice") or {}
    forced = {"any": "*", "tool": choice.get("name")}.get(choice.get("type", "auto"))
    return _plan(
        last_text=user_texts[-1] if user_texts and not results else "",
        tool_result=" ".join(_text(b.get("content")) for b in results) if results else None,
        tools=tools,
        forced=forced,
        no_tools=choice.get("type") == "none",
        max_tokens=body["max_tokens"],
        stops=body.get("stop_sequences") or [],
        prompt_tokens=words(_text(body.get("system", ""))) + sum(words(t) for t in user_texts),
    )


def _anthropic_stop(plan: Plan) -> str:
    return {"tool": "tool_use", "length": "max_tokens", "stop_sequence": "stop_sequence"}.get(
        plan.finish, "end_turn"
    )


def anthropic_response(body: dict[str, Any], *, omit_usage: bool = False) -> dict[str, Any]:
    plan = anthropic_plan(body)
    content: list[dict[str, Any]] = [{"type": "text", "text": plan.text}] if plan.text else []
    if plan.tool_name:
        block = {"type": "tool_use", "id": plan.call_id("toolu_"), "name": plan.tool_name}
        content.append(block | {"input": orjson.loads(plan.tool_args)})
    out: dict[str, Any] = {
        "id": "msg_mock" + hashlib.sha1(orjson.dumps(body)).hexdigest()[:16],
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": _anthropic_stop(plan),
        "stop_sequence": plan.stop_sequence,
    }
    if not omit_usage:
        out["usage"] = {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens}
    return out


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\n".encode() + b"data: " + orjson.dumps({"type": name} | data) + b"\n\n"


def anthropic_stream(body: dict[str, Any], *, omit_usage: bool = False) -> list[bytes]:
    plan = anthropic_plan(body)
    message = anthropic_response(body, omit_usage=omit_usage) | {"content": [], "stop_reason": None}
    message["stop_sequence"] = None
    if not omit_usage:
        message["usage"] = {"input_tokens": plan.prompt_tokens, "output_tokens": 1}
    events = [_event("message_start", {"message": message})]
    index = 0
    if plan.text:
        events.append(
            _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        )
        events.append(_event("ping", {}))
        for piece in plan.text_pieces():
            delta = {"type": "text_delta", "text": piece}
            events.append(_event("content_block_delta", {"index": 0, "delta": delta}))
        events.append(_event("content_block_stop", {"index": 0}))
        index = 1
    if plan.tool_name:
        block = {"type": "tool_use", "id": plan.call_id("toolu_"), "name": plan.tool_name, "input": {}}
        events.append(_event("content_block_start", {"index": index, "content_block": block}))
        fragments = [""] + [plan.tool_args[i : i + 8] for i in range(0, len(plan.tool_args), 8)]
        for fragment in fragments:
            delta = {"type": "input_json_delta", "partial_json": fragment}
            events.append(_event("content_block_delta", {"index": index, "delta": delta}))
        events.append(_event("content_block_stop", {"index": index}))
    final: dict[str, Any] = {
        "delta": {"stop_reason": _anthropic_stop(plan), "stop_sequence": plan.stop_sequence}
    }
    if not omit_usage:
        final["usage"] = {"output_tokens": plan.completion_tokens}
    events.append(_event("message_delta", final))
    events.append(_event("message_stop", {}))
    return events
