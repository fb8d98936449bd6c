"""A use case called as a chat model (``"model": "usecase:<id>"``): inputs from messages, answers as completions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

from aerodrome.errors import BadRequest
from aerodrome.providers.local_extractive import message_text
from aerodrome.usecases.runner import PENDING_ANSWER, Outcome
from aerodrome.usecases.spec import UseCaseSpec

PREFIX = "usecase:"


def usecase_id_of(model: str) -> str | None:
    return model[len(PREFIX) :] if model.startswith(PREFIX) else None


def inputs_from_chat(spec: UseCaseSpec, body: dict[str, Any]) -> dict[str, Any]:
    """The last user message fills the main input; others come from ``inputs`` (extra body) or ``metadata``."""
    main = spec.main_input()
    if main is None:
        raise BadRequest(
            f"the use case {spec.id!r} has no text input to fill from messages; "
            f"call POST /v1/usecases/{spec.id}/run",
            param="model",
            code="usecase_not_chat",
        )
    inputs: dict[str, Any] = {}
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        inputs.update({k: v for k, v in metadata.items() if k in spec.inputs})
    extra = body.get("inputs")
    if extra is not None:
        if not isinstance(extra, dict):
            raise BadRequest("inputs must be an object of named values", param="inputs")
        inputs.update(extra)
    users = [m for m in body["messages"] if m.get("role") == "user"]
    if not users:
        raise BadRequest("a use case needs a user message", param="messages", code="missing_user_message")
    inputs[main] = message_text(users[-1].get("content"))
    return inputs


def _text(outcome: Outcome) -> str:
    if outcome.output is None:
        return PENDING_ANSWER.format(run_id=outcome.run_id) if outcome.review_status else ""
    if isinstance(outcome.output, str):
        return outcome.output
    return orjson.dumps(outcome.output).decode()


def _extension(outcome: Outcome) -> dict[str, Any]:
    data = outcome.to_dict()
    return {
        k: data[k]
        for k in (
            "run_id",
            "usecase_id",
            "spec_version",
            "status",
            "citations",
            "flags",
            "review_status",
            "review_id",
            "fallback_reason",
            "ai_assisted",
        )
    }


def completion(outcome: Outcome, model: str) -> dict[str, Any]:
    prompt, completion_tokens = outcome.usage
    return {
        "id": f"chatcmpl-{outcome.run_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _text(outcome)},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        },
        "aerodrome": _extension(outcome),
    }


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


DONE = b"data: [DONE]\n\n"


class ChunkWriter:
    """A use case's answer as OpenAI chat-completion chunks (server-sent events)."""

    def __init__(self, run_id: str, model: str) -> None:
        self._base = {
            "id": f"chatcmpl-{run_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self._base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def role(self) -> bytes:
        return sse(self._choice({"role": "assistant", "content": ""}))

    def text(self, text: str) -> bytes:
        return sse(self._choice({"content": text}))

    def end(self, outcome: Outcome, *, include_usage: bool) -> Iterator[bytes]:
        """The last chunk (finish reason, the ``aerodrome`` extension: run id, citations, review),
        the usage chunk when asked for, then ``[DONE]``."""
        yield sse({**self._choice({}, "stop"), "aerodrome": _extension(outcome)})
        if include_usage:
            prompt, completion_tokens = outcome.usage
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens,
            }
            yield sse({**self._base, "choices": [], "usage": usage})
        yield DONE


def completion_chunks(outcome: Outcome, model: str, *, include_usage: bool) -> Iterator[bytes]:
    """The finished answer as server-sent events (for runs that do not stream: output checks or
    review need the whole answer first)."""
    writer = ChunkWriter(outcome.run_id, model)
    yield writer.role()
    text = _text(outcome)
    for start in range(0, len(text), 512):
        yield writer.text(text[start : start + 512])
    yield from writer.end(outcome, include_usage=include_usage)
