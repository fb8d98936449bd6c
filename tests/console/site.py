"""A console site for the tests: a real server with departments, users with passwords, use cases
and a small knowledge base; a browser (Debian's Chromium through Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from aerodrome.identity import passwords
from tests.harness import Gateway, base_config, run_gateway

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "correct horse battery staple"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

USERS = [
    {"email": "emma@example.com", "name": "Emma Employee", "department": "hr", "roles": ["user"]},
    {"email": "rita@example.com", "name": "Rita Reviewer", "department": "hr", "roles": ["reviewer"]},
    {"email": "alex@example.com", "name": "Alex Approver", "department": "hr", "roles": ["approver"]},
    {"email": "audrey@example.com", "name": "Audrey Auditor", "department": "platform", "roles": ["auditor"]},
]

POLICY = """\
id: hr-policy
title: HR policy questions
description: Answers about leave and expenses, citing the policy.
owners: {technical: alice@example.com, workflow: bob@example.com}
departments: [hr]
risk_tier: low
inputs:
  question: {type: string, required: true, max_length: 500, description: your question}
prompt: |
  Answer the employee's question using only the policy excerpts below. Cite them.
  {{ context }}
  Question: {{ question }}
model: chat-local
retrieval: {collections: [hr-policies], top_k: 4, mode: lexical}
fallback: {on_low_retrieval: "I can't find this in the HR policies; ask hr@example.com."}
success_criteria:
  - {metric: useful_rate, at_least: 0.8, min_samples: 5}
"""

LETTERS = """\
id: letters
title: Letters to employees
departments: [hr]
risk_tier: medium
inputs:
  topic: {type: string, required: true, max_length: 200}
  tone: {type: enum, values: [formal, friendly], default: formal}
prompt: "A {{ tone }} letter.\\n[1] Parental leave is 16 weeks at full pay.\\nQuestion: {{ topic }}"
model: chat-local
review: {when: [always]}
"""

HR_DOCS = {
    "leave.md": "# Leave policy\n\n## Parental leave\n\nBirth parents receive 16 weeks of parental leave at "
    "full pay.\n\n## Sick leave\n\nEmployees receive 10 days of paid sick leave per year.\n",
    "expenses.md": "# Expenses\n\nSubmit travel expenses within 30 days with the receipts attached.\n",
}


def config(upstream_url: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    cfg = base_config(upstream_url, db_url=f"sqlite:///{tmp_path}/console.db")
    cfg["users"] = cfg["users"] + USERS
    cfg["usecases"] = {"dir": "usecases", "reload_s": 0}
    cfg["collections"] = [
        {
            "name": "hr-policies",
            "data_class": "internal",
            "readers": {"departments": ["hr"]},
            "sources": [{"kind": "folder", "path": "hr"}],
            "embedding": "embed-small",
        }
    ]
    cfg.update(extra)
    return cfg


@contextmanager
def console_site(upstream_url: str, tmp_path: Path, **extra: Any) -> Iterator[Gateway]:
    for folder, files in (("hr", HR_DOCS), ("usecases", {"hr-policy.yaml": POLICY, "letters.yaml": LETTERS})):
        (tmp_path / folder).mkdir(exist_ok=True)
        for name, text in files.items():
            (tmp_path / folder / name).write_text(text, encoding="utf-8")
    with run_gateway(config(upstream_url, tmp_path, **extra), tmp_path) as gw:
        engine = gw.runtime.engine
        for user in [{"email": "admin@example.com"}, *USERS]:
            passwords.set_password(engine, user["email"], PASSWORD, actor="test")
        # in a thread of its own: the browser's Playwright holds this thread's event loop
        with ThreadPoolExecutor(1) as pool:
            pool.submit(gw.runtime.knowledge.sync, "hr-policies").result()
        yield gw


def chromium_missing() -> bool:
    return shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists()


def login_http(gw: Gateway, email: str, password: str = PASSWORD) -> httpx.Client:
    """A plain HTTP client signed in to the console through its login form."""
    import re

    client = gw.client(follow_redirects=False)
    page = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": token.group(1), "next": ""},
    )
    assert r.status_code == 303, r.text
    return client


def csrf_of(html: str) -> str:
    import re

    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)
