"""A local upstream speaking OpenAI's and Anthropic's wire protocols, with fault injection."""

from tests.upstream.fixtures import UpstreamServer

__all__ = ["UpstreamServer"]
