"""Generated traffic for drift and alert tests: questions on two topics, run records in the past."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from aerodrome.gateway.run_context import new_run_id

HR = [
    "How many days of {a} leave do I get {b}?",
    "Can I carry over unused {a} leave {b}?",
    "Who approves my {a} leave request {b}?",
    "What is the policy on {a} leave {b}?",
    "Do I keep my salary during {a} leave {b}?",
]
HR_A = ["parental", "sick", "annual", "unpaid", "compassionate", "study"]
HR_B = ["this year", "after my probation", "as a part-time employee", "in my first year", "next month"]

IT = [
    "My {a} keeps {b}, how do I fix it?",
    "How do I reset the {a} when it is {b}?",
    "The {a} on my workstation is {b} after the update",
    "Who can repair my {a}? It is {b}",
    "Why is the {a} {b} since this morning?",
]
IT_A = ["laptop", "VPN client", "printer driver", "docking station", "Wi-Fi adapter", "Outlook profile"]
IT_B = ["crashing", "disconnecting", "frozen", "very slow", "showing a blue screen", "not detected"]


def questions(topic: str, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    forms, a, b = (HR, HR_A, HR_B) if topic == "hr" else (IT, IT_A, IT_B)
    return [rng.choice(forms).format(a=rng.choice(a), b=rng.choice(b)) for _ in range(n)]


def run_record(
    usecase_id: str, created_at: datetime, *, department: str = "hr", status: str = "ok", cost: float = 0.0
) -> dict[str, Any]:
    """A run record as the gateway writes it (for runs seeded in the past through the run writer)."""
    return {
        "id": new_run_id(),
        "request_id": new_run_id(),
        "created_at": created_at,
        "endpoint": "usecase",
        "key_id": None,
        "user_id": None,
        "principal": "seed@example.com",
        "department_id": department,
        "alias": "chat-small",
        "deployment": "mock-a",
        "provider": "mock",
        "upstream_model": "gpt-mock",
        "use_case_id": usecase_id,
        "spec_version": 1,
        "stream": False,
        "status": status,
        "error_code": "upstream_error" if status == "error" else None,
        "http_status": 502 if status == "error" else 200,
        "prompt_tokens": 20,
        "completion_tokens": 20,
        "tokens_estimated": False,
        "cost_usd": cost,
        "latency_ms": 50.0,
        "ttft_ms": None,
        "attempts": 1,
        "cache_hit": False,
        "input": None,
        "output": None,
        "meta": None,
    }
