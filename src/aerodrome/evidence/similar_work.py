"""Similar work for a proposal: other proposals and live use cases that read alike.

By meaning with the local embedding model when it is installed, else by bag of words. The API's
proposal endpoints and the console's proposal page both show this list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aerodrome.evidence import portfolio

if TYPE_CHECKING:
    from aerodrome.runtime import Runtime


def embedder(rt: Runtime) -> portfolio.Embed | None:
    """The local model when installed (similar work by meaning), else None (bag of words)."""
    from aerodrome.providers.local_embeddings import is_available

    if not is_available():
        return None
    return rt.knowledge.local_embedding().embed


def similar_work(rt: Runtime, item: dict[str, Any]) -> list[dict[str, Any]]:
    """Proposals and live use cases most like ``item`` (a proposal), best first."""
    candidates = [
        ("proposal", o["id"], portfolio.text_of(o["title"], o["problem"], o["workflow"]))
        for o in portfolio.list_all(rt.engine)
        if o["id"] != item["id"]
    ]
    for live in rt.usecases.all():
        if live.id == item.get("usecase_id"):
            continue
        spec = live.spec
        problem = str(spec.definition.get("problem") or "")
        candidates.append(("usecase", live.id, portfolio.text_of(spec.title, spec.description, problem)))
    target = portfolio.text_of(item["title"], item["problem"], item["workflow"])
    return portfolio.similar(target, candidates, embedder(rt))
