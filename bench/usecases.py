"""Use-case overhead per run, excluding the model call (issue 4).

    python bench/usecases.py [--runs N] [--warmup W] [--out FILE.json] [--keep]

What it does (see docs/benchmarks.md, "Use cases: overhead per run"):

* builds a temporary workspace: a platform config (SQLite database in the temp dir, the built-in
  ``local`` provider with the ``local-extractive`` chat deployment behind the alias ``chat-small``
  and the ``local-minilm`` embeddings deployment, department ``hr``, the collection ``hr-policies``
  over a copy of the demo's HR documents) and three use-case spec files:
  ``plain`` (one string input, a prompt template, PII pseudonymise + prompt-injection block + output
  checks, no retrieval), ``knowledge`` (like the demo's hr-policy-assistant: hybrid retrieval over
  hr-policies, top_k 4, min_score 0.25, citations required) and ``bare`` (no guardrails, no
  retrieval: the floor of the machinery);
* ingests the collection and creates an API key with the CLI, then starts ``aerodrome serve`` (one
  worker) as a subprocess and waits for ``/healthz``;
* makes one warm-up pass over every use case and waits until the server is idle (it warms its
  models in the background after start), then
* per use case, after warm-up calls, sends ``--runs`` runs (sequential, one keep-alive connection)
  with questions cycled from a fixed list (some carry an email address), and interleaved with each
  run the **baseline**: the same model call sent directly to ``POST /v1/chat/completions`` (model
  chat-small, the messages the use case sends, rendered here from the same template text; email
  addresses replaced by the pseudonym the model sees; for ``knowledge`` the context is the passages
  ``POST /v1/retrieve`` returned for the question, fetched once beforehand, so the baseline excludes
  retrieval). For ``knowledge`` each iteration also times ``/v1/retrieve`` with the same query
  (the cost of retrieval on its own). The order of run and baseline alternates every iteration.
* reports per use case p50 / p95 / mean of each call, the overhead (difference of medians, of means,
  and the median of the per-iteration differences), the server's CPU time per call (from
  ``/proc/<pid>/stat`` around each call, 10 ms ticks summed over all calls), and the input and
  prompt sizes. The run's ``usage.prompt_tokens`` is compared with the baseline's to check that both
  sent the model the same prompt.

Figures only: nothing here asserts a time. Only loopback (127.0.0.1) is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import describe  # bench/machine.py (the script's own folder is on sys.path)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HR_DOCS = REPO / "src" / "aerodrome" / "cli" / "demo_data" / "hr"
HOST = "127.0.0.1"
EMAIL = "jane.doe@example.com"
PSEUDONYM = "<EMAIL_ADDRESS_1>"  # what the model sees for the first email address (pseudonymise)

CONFIG = """\
database:
  url: sqlite:///aerodrome.db

server:
  key_cache_ttl_s: 2
  default_key_limits: {rpm: 1000000, tpm: 1000000000}

departments:
  - id: platform
    name: Platform team
    content_logging: metadata
  - id: hr
    name: Human Resources
    eligible_users: 120
    content_logging: metadata
    limits: {rpm: 1000000, tpm: 1000000000}

users:
  - {email: admin@example.com, name: Platform admin, department: platform, roles: [platform_admin]}

providers:
  - {name: local, kind: local}

deployments:
  - name: local-extractive
    provider: local
    model: extractive-v1
    status: approved
    hosting: on-prem
    max_data_class: restricted
    prices: {input_per_mtok: 0, output_per_mtok: 0}
    context_window: 16384
  - name: local-minilm
    provider: local
    model: all-MiniLM-L6-v2
    kind: embeddings
    hosting: on-prem
    max_data_class: restricted

aliases:
  - name: chat-small
    deployments: [local-extractive]
  - name: embed-small
    deployments: [local-minilm]

knowledge:
  index: sqlite

collections:
  - name: hr-policies
    data_class: internal
    readers: {departments: [hr, platform]}
    sources: [{kind: folder, path: knowledge/hr}]
    embedding: local

usecases:
  dir: usecases
  reload_s: 0
"""

# The fixed policy text of `plain` (no retrieval: the prompt carries its own excerpts).
PLAIN_PROMPT = """\
Answer the employee's question in two sentences, using only these policy excerpts.
[1] Full-time employees receive 28 days of paid annual leave per calendar year.
[2] Birth parents receive 16 weeks of parental leave at full pay, followed by 10 weeks at half pay.
[3] Submit expense claims within 30 days with receipts, in the finance system.
[4] Employees may work remotely up to 3 days per week, agreed with their manager.
[5] The daily meal allowance is 45 euros in the home country and 60 euros abroad.
Question: {{ question }}
"""

KNOWLEDGE_PROMPT = """\
Answer the employee's question using only the policy excerpts below. Cite them by number.
{{ context }}
Question: {{ question }}
"""

BARE_PROMPT = """\
Answer the employee's question using only these policy excerpts.
[1] Full-time employees receive 28 days of paid annual leave per calendar year.
[2] Submit expense claims within 30 days with receipts, in the finance system.
Question: {{ question }}
"""


def _indent(text: str, n: int = 2) -> str:
    return "".join(" " * n + line if line.strip() else line for line in text.splitlines(keepends=True))


def spec_files() -> dict[str, str]:
    """The three spec files (YAML text), by use-case id."""
    guards = """\
guardrails:
  pii: {action: pseudonymise}
  prompt_injection: {action: block}
  output: {max_chars: 4000, banned_terms: [guarantee, promise]%s}
"""
    return {
        "plain": "id: plain\ntitle: HR question over fixed excerpts\ndepartments: [hr]\nrisk_tier: low\n"
        "inputs:\n  question: {type: string, required: true, max_length: 2000}\n"
        "prompt: |\n" + _indent(PLAIN_PROMPT) + "model: chat-small\n" + guards % "",
        "knowledge": "id: knowledge\ntitle: HR policy questions\ndepartments: [hr]\nrisk_tier: low\n"
        "inputs:\n  question: {type: string, required: true, max_length: 2000}\n"
        "prompt: |\n" + _indent(KNOWLEDGE_PROMPT) + "model: chat-small\n"
        "retrieval: {collections: [hr-policies], top_k: 4, min_score: 0.25, mode: hybrid}\n"
        + guards % ", require_citations: true"
        + 'fallback:\n  on_low_retrieval: "I can\'t find this in the HR policies. Please ask hr@example.com."\n',
        "bare": "id: bare\ntitle: HR question, no checks\ndepartments: [hr]\nrisk_tier: low\n"
        "inputs:\n  question: {type: string, required: true, max_length: 2000}\n"
        "prompt: |\n" + _indent(BARE_PROMPT) + "model: chat-small\n",
    }


PROMPTS = {"plain": PLAIN_PROMPT, "knowledge": KNOWLEDGE_PROMPT, "bare": BARE_PROMPT}

# Realistic employee questions; every fourth carries an email address (pseudonymised by `plain` and
# `knowledge` before the model sees it).
QUESTIONS = [
    "How many weeks of parental leave do birth parents get?",
    "How many days of paid annual leave does a full-time employee receive per year?",
    "Can I carry over unused annual leave days to next year, and when do they expire?",
    f"Hi, this is Jane ({EMAIL}). How long do I have to submit my expense claims after a trip?",
    "What is the daily meal allowance when I travel abroad?",
    "How many days per week may I work from home?",
    "Do I need a medical certificate if I am sick for three days?",
    f"Please reply to {EMAIL}: is business class allowed on a 7 hour flight?",
    "What is the hotel limit per night in a capital city?",
    "How much is the home-office allowance and who gets it?",
    "How many days of bereavement leave are granted when a close relative dies?",
    f"My manager asked me to check with HR at {EMAIL} - may I work remotely from another country?",
    "When are approved expense claims reimbursed?",
    "How long is parental leave for partners and adoptive parents?",
    "How far ahead should I book trains and flights through the travel portal?",
    f"Could you send the answer to {EMAIL}? Which equipment does the company provide for home working?",
]


# --------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def aerodrome_cli() -> list[str]:
    exe = Path(sys.executable).parent / "aerodrome"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("aerodrome")
    if found:
        return [found]
    return [sys.executable, "-m", "aerodrome.cli"]


def cli(args: list[str], cwd: Path, timeout: float = 600) -> str:
    r = subprocess.run(
        [*aerodrome_cli(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(
            f"aerodrome {' '.join(args)} failed ({r.returncode}): {r.stdout[-800:]} {r.stderr[-800:]}"
        )
    return r.stdout


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """Percentile by linear interpolation (q in 0..100)."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "n": len(ms),
        "p50_ms": round(pct(ms, 50), 3),
        "p95_ms": round(pct(ms, 95), 3),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan"),
        "min_ms": round(min(ms), 3) if ms else float("nan"),
        "max_ms": round(max(ms), 3) if ms else float("nan"),
    }


class Client:
    """One keep-alive HTTP/1.1 connection; times each request to the last byte of the answer."""

    def __init__(self, port: int, key: str, server_pid: int) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.pid = server_pid
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)

    def post(self, path: str, body: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
        """(seconds, server CPU ticks used meanwhile, answer). Raises on a non-200 answer."""
        data = json.dumps(body).encode()
        for attempt in (1, 2):
            c0 = cpu_ticks(self.pid)
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", path, body=data, headers=self.headers)
                r = self.conn.getresponse()
                raw = r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()  # the server closed the idle connection: reconnect once
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                if attempt == 2:
                    raise
                continue
            dt = time.perf_counter() - t0
            ticks = cpu_ticks(self.pid) - c0
            if r.status != 200:
                raise RuntimeError(f"POST {path}: HTTP {r.status}: {raw[:500]!r}")
            return dt, ticks, json.loads(raw)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 120) -> float:
    t0 = time.monotonic()
    last = "no answer"
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before serving")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            conn.close()
            if r.status == 200:
                return time.monotonic() - t0
            last = f"HTTP {r.status}"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.1)
    raise RuntimeError(f"/healthz not 200 within {timeout:.0f}s (last: {last})")


def stop_server(proc: subprocess.Popen | None) -> None:
    """SIGINT (a clean shutdown: pending run records are flushed), then SIGKILL after 20 s."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        log("server did not stop within 20 s of SIGINT: killing it")
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)


# --------------------------------------------------------------------------- workspace
def build_workspace(root: Path) -> Path:
    (root / "knowledge" / "hr").mkdir(parents=True)
    for doc in sorted(HR_DOCS.glob("*.md")):
        shutil.copy(doc, root / "knowledge" / "hr" / doc.name)
    (root / "usecases").mkdir()
    for uc, text in spec_files().items():
        (root / "usecases" / f"{uc}.yaml").write_text(text, encoding="utf-8")
    cfg = root / "aerodrome.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    return cfg


# --------------------------------------------------------------------------- the baseline's messages
def context_text(passages: list[dict[str, Any]]) -> str:
    """The `context` template variable, as the runner builds it: ``[n] text`` blocks."""
    return "\n\n".join(f"[{i}] {p.get('text') or ''}".strip() for i, p in enumerate(passages, 1))


def render(uc: str, question: str, passages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The messages the use case sends, rendered from the same template text with the same settings."""
    from aerodrome.usecases.template import PromptTemplate  # the same sandboxed Jinja2 environment

    model_question = question if uc == "bare" else question.replace(EMAIL, PSEUDONYM)
    text = PromptTemplate(PROMPTS[uc], name="prompt").render(
        {"question": model_question, "context": context_text(passages)}
    )
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- measuring
def measure(client: Client, uc: str, runs: int, warmup: int) -> dict[str, Any]:
    passages: dict[str, list[dict[str, Any]]] = {}
    retrieve_body: dict[str, dict[str, Any]] = {}
    if uc == "knowledge":
        for q in QUESTIONS:  # once per question, before timing: the baseline excludes retrieval
            body = {
                "collections": ["hr-policies"],
                "query": q,
                "top_k": 4,
                "min_score": 0.25,
                "mode": "hybrid",
            }
            retrieve_body[q] = body
            passages[q] = client.post("/v1/retrieve", body)[2]["results"]
            if not passages[q]:
                raise RuntimeError(f"no passage for {q!r}: the run would fall back without a model call")
    messages = {q: render(uc, q, passages.get(q, [])) for q in QUESTIONS}
    baseline: dict[str, dict[str, Any]] = {
        q: {"model": "chat-small", "messages": messages[q]} for q in QUESTIONS
    }

    def one(i: int) -> dict[str, Any]:
        q = QUESTIONS[i % len(QUESTIONS)]
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("run", f"/v1/usecases/{uc}/run", {"inputs": {"question": q}}),
            ("baseline", "/v1/chat/completions", baseline[q]),
        ]
        if i % 2:
            calls.reverse()
        if uc == "knowledge":
            calls.append(("retrieve", "/v1/retrieve", retrieve_body[q]))
        out: dict[str, Any] = {}
        for kind, path, body in calls:
            dt, ticks, answer = client.post(path, body)
            out[kind] = (dt, ticks, answer)
        return out

    for i in range(warmup):
        one(i)
    times: dict[str, list[float]] = {"run": [], "baseline": [], "retrieve": []}
    ticks: dict[str, int] = {"run": 0, "baseline": 0, "retrieve": 0}
    diffs: list[float] = []
    diffs_ex_retrieval: list[float] = []
    statuses: dict[str, int] = {}
    flags: dict[str, int] = {}
    token_match = 0
    prompt_tokens: list[int] = []
    token_mismatch: list[tuple[int, int]] = []
    t_start = time.monotonic()
    window = [_utc_now()]
    load_before = os.getloadavg()
    for i in range(runs):
        res = one(i)
        for kind, (dt, tk, _) in res.items():
            times[kind].append(dt)
            ticks[kind] += tk
        diffs.append(res["run"][0] - res["baseline"][0])
        if "retrieve" in res:
            diffs_ex_retrieval.append(res["run"][0] - res["baseline"][0] - res["retrieve"][0])
        run_answer, base_answer = res["run"][2], res["baseline"][2]
        statuses[run_answer["status"]] = statuses.get(run_answer["status"], 0) + 1
        for f in run_answer.get("flags") or []:
            flags[f] = flags.get(f, 0) + 1
        rt, bt = run_answer["usage"]["prompt_tokens"], base_answer["usage"]["prompt_tokens"]
        prompt_tokens.append(bt)
        if rt == bt:
            token_match += 1
        elif len(token_mismatch) < 5:
            token_mismatch.append((rt, bt))
    elapsed = time.monotonic() - t_start
    window.append(_utc_now())
    load_after = os.getloadavg()

    q_bytes = [len(json.dumps({"inputs": {"question": q}}).encode()) for q in QUESTIONS]
    prompt_chars = [len(messages[q][0]["content"]) for q in QUESTIONS]
    result: dict[str, Any] = {
        "runs": runs,
        "warmup": warmup,
        "elapsed_s": round(elapsed, 1),
        "window_utc": window,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "run": summary(times["run"]),
        "baseline": summary(times["baseline"]),
        "overhead": {
            "p50_diff_ms": None,
            "mean_diff_ms": None,
            "median_paired_diff_ms": round(pct([d * 1000 for d in diffs], 50), 3),
        },
        "server_cpu_ms_per_call": {k: round(ticks[k] * 1000 / _CLK_TCK / runs, 3) for k in ticks if times[k]},
        "status": statuses,
        "flags": flags,
        "prompt_tokens_equal": f"{token_match}/{runs}",
        "prompt_tokens_mismatch_examples": token_mismatch,
        "input": {
            "question_chars_min": min(len(q) for q in QUESTIONS),
            "question_chars_mean": round(statistics.fmean(len(q) for q in QUESTIONS), 1),
            "question_chars_max": max(len(q) for q in QUESTIONS),
            "body_bytes_mean": round(statistics.fmean(q_bytes), 1),
            "distinct_questions": len(QUESTIONS),
            "with_email": sum(EMAIL in q for q in QUESTIONS),
            "prompt_chars_mean": round(statistics.fmean(prompt_chars), 1),
            "prompt_tokens_mean": round(statistics.fmean(prompt_tokens), 1),
        },
    }
    result["overhead"]["p50_diff_ms"] = round(result["run"]["p50_ms"] - result["baseline"]["p50_ms"], 3)
    result["overhead"]["mean_diff_ms"] = round(result["run"]["mean_ms"] - result["baseline"]["mean_ms"], 3)
    if times["retrieve"]:
        result["retrieve"] = summary(times["retrieve"])
        # what the run adds besides the model call and the retrieval (per-iteration differences)
        result["overhead"]["median_paired_diff_ex_retrieval_ms"] = round(
            pct([d * 1000 for d in diffs_ex_retrieval], 50), 3
        )
        result["input"]["passages_mean"] = round(statistics.fmean(len(passages[q]) for q in QUESTIONS), 2)
    return result


def _utc_now() -> str:
    """Now in UTC as the run records store it in SQLite."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def server_side(db: Path, windows: dict[str, list[str]]) -> dict[str, Any]:
    """From the run records (read after the server stopped and flushed them), per measured phase: the
    server's own latency of the use-case runs and of the baseline calls, and each guardrail check's time."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        out: dict[str, Any] = {}
        for uc, (start, end) in windows.items():
            rows = con.execute(
                "SELECT latency_ms, meta FROM runs WHERE use_case_id = ? AND created_at BETWEEN ? AND ?",
                (uc, start, end),
            ).fetchall()
            base = con.execute(
                "SELECT latency_ms FROM runs WHERE endpoint = 'chat' AND created_at BETWEEN ? AND ?",
                (start, end),
            ).fetchall()
            checks: dict[str, list[float]] = {}
            for _, meta in rows:
                for g in (json.loads(meta or "{}").get("usecase") or {}).get("guardrails") or []:
                    if g.get("elapsed_ms") is not None:
                        checks.setdefault(g["check"], []).append(float(g["elapsed_ms"]))
            out[uc] = {
                "records": len(rows),
                "baseline_records": len(base),
                "run_latency_p50_ms": round(pct([float(r[0]) for r in rows if r[0] is not None], 50), 3),
                "baseline_latency_p50_ms": round(pct([float(r[0]) for r in base if r[0] is not None], 50), 3),
                "guardrail_p50_ms": {k: round(pct(v, 50), 3) for k, v in sorted(checks.items())},
            }
        return out
    finally:
        con.close()


def settle(pid: int, max_wait: float = 30.0) -> float:
    """Wait until the server is idle (at most 1 CPU tick per 0.5 s; its warm-up tasks run in the
    background after start); returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait:
        before = cpu_ticks(pid)
        time.sleep(0.5)
        if cpu_ticks(pid) - before <= 1:
            break
    return time.monotonic() - t0


def print_table(results: dict[str, dict[str, Any]]) -> str:
    lines = []
    hdr = (
        f"{'use case':10s} {'run p50':>8s} {'p95':>7s} {'mean':>7s} | {'base p50':>8s} {'p95':>7s} {'mean':>7s}"
        f" | {'ovh p50':>8s} {'ovh mean':>8s} {'paired':>7s} | {'cpu run':>7s} {'cpu base':>8s}"
        f" | {'retr p50':>8s} {'p95':>7s}"
    )
    lines.append("latency in ms (to the last byte); overhead = run - baseline; cpu = server CPU ms per call")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for uc, r in results.items():
        ret = r.get("retrieve")
        cpu = r["server_cpu_ms_per_call"]
        lines.append(
            f"{uc:10s} {r['run']['p50_ms']:8.2f} {r['run']['p95_ms']:7.2f} {r['run']['mean_ms']:7.2f} |"
            f" {r['baseline']['p50_ms']:8.2f} {r['baseline']['p95_ms']:7.2f} {r['baseline']['mean_ms']:7.2f} |"
            f" {r['overhead']['p50_diff_ms']:8.2f} {r['overhead']['mean_diff_ms']:8.2f}"
            f" {r['overhead']['median_paired_diff_ms']:7.2f} |"
            f" {cpu['run']:7.2f} {cpu['baseline']:8.2f} |"
            + (f" {ret['p50_ms']:8.2f} {ret['p95_ms']:7.2f}" if ret else f" {'-':>8s} {'-':>7s}")
        )
    lines.append("")
    for uc, r in results.items():
        if "median_paired_diff_ex_retrieval_ms" in r["overhead"]:
            lines.append(
                f"{uc}: overhead without retrieval (median of run - baseline - retrieve per iteration):"
                f" {r['overhead']['median_paired_diff_ex_retrieval_ms']:.2f} ms"
            )
    for uc, r in results.items():
        srv = r.get("server_side")
        if srv:
            lines.append(
                f"{uc}: server-side p50 ({srv['records']}/{srv['baseline_records']} run records) run {srv['run_latency_p50_ms']:.2f} ms, baseline"
                f" {srv['baseline_latency_p50_ms']:.2f} ms; guardrail checks p50 ms {srv['guardrail_p50_ms']}"
            )
    for uc, r in results.items():
        inp = r["input"]
        lines.append(
            f"{uc}: {r['runs']} runs in {r['elapsed_s']} s, status {r['status']}, flags {r['flags'] or '{}'},"
            f" prompt tokens equal {r['prompt_tokens_equal']}; question {inp['question_chars_min']}-"
            f"{inp['question_chars_max']} chars (mean {inp['question_chars_mean']}, {inp['with_email']}/"
            f"{inp['distinct_questions']} with an email), prompt {inp['prompt_chars_mean']} chars mean"
            + (f", {inp['passages_mean']} passages" if "passages_mean" in inp else "")
            + f"; load {r['loadavg_before'][0]} -> {r['loadavg_after'][0]}"
        )
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description="Use-case overhead per run, excluding the model call.")
    ap.add_argument("--runs", type=int, default=300, help="measured runs per use case (default 300)")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up iterations per use case (default 10)")
    ap.add_argument("--only", choices=["plain", "knowledge", "bare"], action="append", help="repeatable")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace (its path is printed)")
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")

    tmp = Path(tempfile.mkdtemp(prefix="aerodrome-bench-usecases-"))
    proc: subprocess.Popen | None = None
    client: Client | None = None
    try:
        cfg = build_workspace(tmp)
        log(f"workspace {tmp}")
        t0 = time.monotonic()
        cli(["ingest", "hr-policies", "--config", str(cfg)], cwd=tmp)
        log(f"ingested hr-policies in {time.monotonic() - t0:.1f} s")
        out = cli(["keys", "create", "--department", "hr", "--name", "bench", "--config", str(cfg)], cwd=tmp)
        key = out.strip().splitlines()[-1].strip()
        port = free_port()
        logfile = tmp / "server.log"
        with open(logfile, "wb") as fh:
            proc = subprocess.Popen(
                [*aerodrome_cli(), "serve", "--config", str(cfg), "--port", str(port)],
                cwd=tmp,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        started = wait_healthy(port, proc)
        log(f"server pid {proc.pid} on port {port}, healthy after {started:.2f} s")
        client = Client(port, key, proc.pid)
        results: dict[str, Any] = {}
        order = args.only or ["bare", "plain", "knowledge"]
        # the server warms its models in the background after start: one warm-up pass over every use
        # case first, then wait until it is idle, so that the first use case measured is not penalised
        for uc in order:
            measure(client, uc, 1, args.warmup)
        log(f"warm-up pass done; server idle after {settle(proc.pid):.1f} s")
        for uc in order:
            log(f"=== {uc}: {args.warmup} warm-up + {args.runs} runs")
            results[uc] = measure(client, uc, args.runs, args.warmup)
        client.close()
        stop_server(proc)  # flushes the run records
        try:
            windows = {uc: r["window_utc"] for uc, r in results.items()}
            for uc, srv in server_side(tmp / "aerodrome.db", windows).items():
                results[uc]["server_side"] = srv
        except (OSError, ValueError, KeyError, sqlite3.Error) as e:  # the breakdown is optional
            log(f"no server-side breakdown: {type(e).__name__}: {e}")
        print()
        table = print_table(results)
        if args.out:
            doc = {
                "date": _dt.date.today().isoformat(),
                "machine": describe(),
                "method": {
                    "runs": args.runs,
                    "warmup": args.warmup,
                    "client": "http.client, one keep-alive connection, sequential",
                    "server": "aerodrome serve, 1 worker, SQLite, content_logging metadata",
                    "questions": QUESTIONS,
                    "specs": spec_files(),
                },
                "usecases": results,
                "table": table,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(doc, indent=2) + "\n")
            log(f"wrote {args.out}")
    except (RuntimeError, OSError, subprocess.SubprocessError, http.client.HTTPException) as e:
        log(f"FAILED: {type(e).__name__}: {e}")
        logfile = tmp / "server.log"
        if logfile.exists():
            print(logfile.read_text(errors="replace")[-2000:], file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
        stop_server(proc)
        if args.keep:
            log(f"workspace kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main())
