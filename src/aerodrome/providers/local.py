"""The built-in ``local`` provider kind: runs the whole product with no network and no API key.

Chat is *extractive* (see :mod:`aerodrome.providers.local_extractive`): the answer is
made of the best-supported sentences of the context carried by the request (retrieved
passages), quoted verbatim with citation markers such as ``[1]``. It does not generate
text, has no world knowledge and ignores instructions; when the context does not
support an answer it says "I could not find this in the provided context.", and with no
context it says that it only answers from provided context. It honours ``max_tokens``
/ ``max_completion_tokens`` (finish reason ``length``) and ``stop``; it always returns
one choice (``n`` is ignored), and no tool calls.

Embeddings use all-MiniLM-L6-v2 (see :mod:`aerodrome.providers.local_embeddings`),
384 dimensions, normalised, ``encoding_format`` float or base64. They need the optional
``local`` extra; without it the call fails with ``local_embeddings_unavailable``.

Token counts come from :func:`count_tokens`, a deterministic approximation of OpenAI's
tokenizer (about four characters per token on English text), not an exact count.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aerodrome.config import DeploymentConfig
from aerodrome.errors import UpstreamRejected
from aerodrome.providers import local_embeddings, local_extractive, local_structured
from aerodrome.providers.base import Provider, ProviderContext

MAX_EMBEDDING_INPUTS = 2048
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_", re.UNICODE)
_PIECE = re.compile(r"\s*\S+")
_MESSAGE_OVERHEAD = 4  # role and separators, as OpenAI counts chat messages
_REPLY_PRIMING = 3


def count_tokens(text: str) -> int:
    """Approximate OpenAI token count: words of up to 7 letters are one token, longer
    ones one more per 7 letters, digits one per 3, every punctuation mark one.
    Additive over whitespace: the count of a text is the sum of its words' counts."""
    total = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token.isdigit():
            total += (len(token) + 2) // 3
        elif token.isalpha():
            total += 1 + (len(token) - 1) // 7
        else:
            total += 1
    return total


def count_prompt_tokens(messages: list[Any]) -> int:
    total = _REPLY_PRIMING
    for message in messages:
        if isinstance(message, dict):
            total += _MESSAGE_OVERHEAD + count_tokens(local_extractive.message_text(message.get("content")))
    return total


def _reject(message: str, code: str, param: str | None = None) -> UpstreamRejected:
    error = UpstreamRejected(message, code=code, retryable=False)
    error.param = param
    return error


def _output_limit(deployment: DeploymentConfig, body: dict[str, Any]) -> int:
    limit = deployment.max_output_tokens
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _reject(f"{name} must be a positive integer", "invalid_request", name)
        limit = min(limit, value)
        break
    return limit


def _stop_sequences(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return [s for s in stop if s]
    raise _reject("stop must be a string or a list of strings", "invalid_request", "stop")


def _pieces(text: str, limit: int) -> tuple[list[str], str]:
    """Word-sized pieces of the answer within ``limit`` tokens, and the finish reason."""
    pieces: list[str] = []
    used = 0
    for piece in _PIECE.findall(text):
        cost = count_tokens(piece)
        if used + cost > limit:
            if not pieces:  # not even one word fits: keep what fits of it, ~4 chars a token
                pieces.append(piece[: max(1, (limit - used) * 4)])
            return pieces, "length"
        pieces.append(piece)
        used += cost
    return pieces, "stop"


class LocalProvider:
    """Extractive chat and local embeddings, in process. See the module docstring."""

    kind = "local"

    def __init__(self, ctx: ProviderContext) -> None:
        self.config = ctx.config
        self._embedder = local_embeddings.LocalEmbedder()

    # -- chat -------------------------------------------------------------------------

    def _answer(self, deployment: DeploymentConfig, body: dict[str, Any]) -> tuple[list[str], str, int]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _reject("messages must be a non-empty list", "invalid_request", "messages")
        limit = _output_limit(deployment, body)
        stops = _stop_sequences(body)
        schema = local_structured.requested_schema(body)
        if schema is not None:
            text = local_structured.extract(messages, schema)
        else:
            context, question = local_extractive.read_messages(messages)
            text = local_extractive.answer(context, question)
        for stop in stops:  # OpenAI semantics: cut before the first stop sequence, finish "stop"
            at = text.find(stop)
            if at >= 0:
                text = text[:at]
        pieces, finish = _pieces(text, limit)
        return pieces, finish, count_prompt_tokens(messages)

    @staticmethod
    def _usage(prompt_tokens: int, pieces: list[str]) -> dict[str, int]:
        completion = sum(count_tokens(p) for p in pieces)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }

    async def chat(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        pieces, finish, prompt_tokens = self._answer(deployment, body)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(pieces), "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": self._usage(prompt_tokens, pieces),
        }

    async def chat_stream(
        self, deployment: DeploymentConfig, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        pieces, finish, prompt_tokens = self._answer(deployment, body)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": deployment.model,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**base, "choices": [choice]}

        yield chunk({"role": "assistant", "content": ""})
        for piece in pieces:
            yield chunk({"content": piece})
        yield chunk({}, finish)
        yield {**base, "choices": [], "usage": self._usage(prompt_tokens, pieces)}

    # -- embeddings -------------------------------------------------------------------

    async def embeddings(self, deployment: DeploymentConfig, body: dict[str, Any]) -> dict[str, Any]:
        texts = _embedding_inputs(body.get("input"))
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise _reject("encoding_format must be 'float' or 'base64'", "invalid_request", "encoding_format")
        dimensions = body.get("dimensions")
        if dimensions is not None and (
            isinstance(dimensions, bool) or dimensions != local_embeddings.DIMENSIONS
        ):
            raise _reject(
                f"{local_embeddings.MODEL_NAME} has {local_embeddings.DIMENSIONS} dimensions; "
                "other values of 'dimensions' are not supported",
                "unsupported_dimensions",
                "dimensions",
            )
        raw = await asyncio.to_thread(self._embedder.encode, texts)
        convert = local_embeddings.as_base64 if encoding == "base64" else local_embeddings.as_floats
        tokens = sum(count_tokens(t) for t in texts)
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": convert(vector)}
                for i, vector in enumerate(raw)
            ],
            "model": deployment.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def aclose(self) -> None:
        self._embedder.close()


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise _reject("input must be a string or a non-empty list of strings", "invalid_request", "input")
    if all(isinstance(item, str) for item in value):
        if len(value) > MAX_EMBEDDING_INPUTS:
            raise _reject(f"at most {MAX_EMBEDDING_INPUTS} inputs per request", "invalid_request", "input")
        return list(value)
    if all(isinstance(item, int | list) and not isinstance(item, bool) for item in value):
        raise _reject(
            "the local engine embeds text only; token-array input is not supported",
            "unsupported_input",
            "input",
        )
    raise _reject("input must be a string or a non-empty list of strings", "invalid_request", "input")


def factory(ctx: ProviderContext) -> Provider:
    """Entry point of the ``local`` provider kind."""
    return LocalProvider(ctx)
