"""Cost of a call from a deployment's prices (USD per million tokens)."""

from __future__ import annotations

from aerodrome.config import DeploymentConfig


def cost_usd(dep: DeploymentConfig | None, prompt_tokens: int, completion_tokens: int) -> float:
    if dep is None:
        return 0.0
    p = dep.prices
    return (prompt_tokens * p.input_per_mtok + completion_tokens * p.output_per_mtok) / 1_000_000


def worst_case_usd(input_price: float, output_price: float, prompt_tokens: int, max_completion: int) -> float:
    return (prompt_tokens * input_price + max_completion * output_price) / 1_000_000
