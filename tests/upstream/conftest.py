from tests.upstream.fixtures import upstream, upstream_keyed  # noqa: F401
