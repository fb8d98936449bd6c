"""Console benchmark: the server time of each console page with 100k runs recorded.

    python bench/console.py [--runs 100000] [--repeat 7] [--backend sqlite|postgresql] [--pages ...]

Method (docs/benchmarks.md, "Console"): the evidence benchmark's data set (bench/evidence.py:
100k runs of two use cases in two departments over 120 days ending now, 600 users, feedback on
10%, review items for 5%, timed tasks for 2%) in a SQLite file (or a scratch PostgreSQL
database on 127.0.0.1:5432 with ``--backend postgresql``, analysed after loading), rolled up as
the running server keeps it; the real server (uvicorn, one process) on 127.0.0.1 with the console; a platform admin
(every department) and a department user signed in through the login form. Each page is fetched
once to warm up, then --repeat times; the figure is the median and the worst of the wall time of
the request on the same machine (HTTP on the loopback included, about a millisecond). The first
fetch is reported too ("first"): it is a page's cold cost (nothing remembered by the evidence
memos, aerodrome.evidence.memo; the first use of the connection pool and compiled queries).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe  # noqa: E402

import evidence as data_set  # noqa: E402  (bench/evidence.py: the data set)
from aerodrome.app import create_app  # noqa: E402
from aerodrome.config import load_config  # noqa: E402
from aerodrome.evidence import rollups  # noqa: E402
from aerodrome.identity import passwords, store  # noqa: E402
from aerodrome.monitoring import daily_rollups  # noqa: E402
from aerodrome.settings import Settings  # noqa: E402
from aerodrome.storage import migrate  # noqa: E402
from aerodrome.storage.engine import make_engine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "benchmark password 1"
PAGES = [
    "/console/assistant",
    "/console/dashboards?days=7",
    "/console/dashboards?days=30",
    "/console/dashboards?days=90",
    "/console/dashboards?days=30&department=hr&usecase=triage",
    "/console/reviews",
    "/console/usecases",
    "/console/usecases/triage",
    "/console/usecases/triage/evidence",  # loaded by the page after it shows (the evidence engine's work)
    "/console/models",
    "/console/knowledge",
    "/console/audit",
    "/console/keys",
]
USER_PAGES = ["/console/assistant", "/console/dashboards?days=30", "/console/models", "/console/keys"]


def config(url: str) -> dict[str, Any]:
    return {
        "database": {"url": url},
        "departments": [
            {"id": "hr", "name": "HR", "eligible_users": 400},
            {"id": "finance", "name": "Finance", "eligible_users": 300},
            {"id": "platform", "name": "Platform"},
        ],
        "users": [{"email": "admin@example.com", "department": "platform", "roles": ["platform_admin"]}],
        "providers": [{"name": "local", "kind": "local"}],
        "deployments": [
            {"name": "local-extractive", "provider": "local", "model": "extractive-v1", "hosting": "on-prem"}
        ],
        "aliases": [{"name": "chat-small", "deployments": ["local-extractive"]}],
    }


def sign_in(base: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").text)
    assert token is not None
    r = client.post(
        "/console/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert r.status_code == 303, r.text
    return client


def time_pages(client: httpx.Client, pages: list[str], repeat: int) -> dict[str, dict[str, float]]:
    out = {}
    for page in pages:
        t0 = time.perf_counter()
        r = client.get(page)
        first = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, (page, r.status_code, r.text[:300])
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = client.get(page)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200
        out[page] = {
            "first_ms": round(first, 1),
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
        }
        print(
            f"  {page:60s} first {first:7.1f} ms  median {out[page]['median_ms']:7.1f} ms"
            f"  worst {out[page]['max_ms']:7.1f} ms"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pages", nargs="+", default=None, help="only these admin pages (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, data_set.database(args.backend) as url:
        path = Path(tmp) / "aerodrome.yaml"
        path.write_text(yaml.safe_dump(config(url)), encoding="utf-8")
        engine = make_engine(url)
        migrate.upgrade(engine)
        now = dt.datetime.now(dt.UTC)
        data_set.START = now - dt.timedelta(days=data_set.DAYS)  # the 120 days end now
        print(f"writing {args.runs} runs ...", flush=True)
        written = data_set.generate(engine, args.runs)
        rolled = time.perf_counter()
        rollups.update(engine)
        daily_rollups.update(engine)
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        print(f"  written in {written:.1f} s, rolled up in {time.perf_counter() - rolled:.1f} s")
        cfg = load_config(path)
        store.apply_config(engine, cfg)
        user_email = data_set.user(0)[1]
        for email in ("admin@example.com", user_email):
            passwords.set_password(engine, email, PASSWORD, actor="bench")
        engine.dispose()

        app = create_app(Settings(config=path), cfg)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        try:
            print("platform admin (every department):")
            admin = time_pages(sign_in(base, "admin@example.com"), args.pages or PAGES, args.repeat)
            user = {}
            if args.pages is None:
                print(f"department user ({user_email}, own runs):")
                user = time_pages(sign_in(base, user_email), USER_PAGES, args.repeat)
        finally:
            server.should_exit = True
            thread.join(20)
    result = {
        "benchmark": "console",
        "runs": args.runs,
        "backend": args.backend,
        "repeat": args.repeat,
        "machine": describe(),
        "admin": admin,
        "user": user,
        "worst_median_ms": max(v["median_ms"] for v in [*admin.values(), *user.values()]),
    }
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if args.backend == "sqlite" else f"-{args.backend}"
    if args.pages is not None:
        suffix += "-" + "-".join(re.sub(r"\W+", "_", p.strip("/")) for p in args.pages)[:80]
    out = RESULTS / f"console-{dt.date.today().isoformat()}{suffix}.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"slowest page (median): {result['worst_median_ms']} ms; written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
