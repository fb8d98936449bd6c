"""Gateway benchmark: Aerodrome side by side with LiteLLM proxy and Portkey gateway.

    python bench/gateway.py [--duration S] [--peers] [--only aerodrome|litellm|portkey] [--redis URL]

Method (see docs/benchmarks.md):

* the mock upstream (bench/mock_upstream.py) runs pinned to core 1;
* each gateway runs alone, pinned to core 0 (``taskset -c 0``), one worker;
* the load generator is wrk (``taskset -c 1``, one thread, Lua script for the
  POST body and headers), sharing core 1 with the mock;
* "direct" = wrk -> mock with no gateway; *added* latency = gateway percentile
  minus the direct percentile at concurrency 1;
* per gateway: time from process spawn to first 200 on /v1/chat/completions,
  concurrency 1 latency (non-streaming and streaming), concurrency 32
  throughput (non-streaming and streaming), RSS (VmRSS / VmHWM, summed over
  the gateway's process tree) idle and after load.

Peers are never project dependencies: with ``--peers`` they are installed on
first use into bench/.peers/ (git-ignored): LiteLLM into its own venv,
Portkey into its own node folder.  A peer that fails to install or start is
reported and skipped.

Only loopback (127.0.0.1) is ever contacted; every loop is bounded in count
and time.
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
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from machine import describe  # bench/machine.py (the script's own folder is on sys.path)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PEERS = BENCH / ".peers"
RESULTS = BENCH / "results"

GATEWAY_CORE = "0"
LOAD_CORE = "1"  # mock upstream + load generator
HOST = "127.0.0.1"
PATH = "/v1/chat/completions"
BODY = {"model": "chat-bench", "messages": [{"role": "user", "content": "hello"}]}
BODY_STREAM = dict(BODY, stream=True)

LITELLM_VERSION = "1.109.1"
PORTKEY_VERSION = "1.15.2"
HONO_NODE_SERVER = "1.13.5"  # see ensure_portkey
REFERENCE = {  # from the issue: one core, added p50 / req/s
    "litellm": {"version": "1.109", "added_p50_ms": 13.0, "rps": 69},
    "portkey": {"version": "1.15", "added_p50_ms": 1.3, "rps": 620},
}
TARGETS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "rps_c32": 1000, "rss_mb": 150, "startup_s": 2.0}

STARTUP_TIMEOUT_S = 180.0
_children: list[subprocess.Popen] = []


# --------------------------------------------------------------------------- utils
def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def spawn(
    argv: list[str], core: str, *, cwd: Path | None = None, env: dict | None = None, logfile: Path
) -> subprocess.Popen:
    """Start a process pinned to `core`, in its own session (so we can stop its tree)."""
    full = ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv
    with open(logfile, "wb") as fh:
        p = subprocess.Popen(
            full,
            cwd=cwd,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _children.append(p)
    return p


def stop(p: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Stop a process we started, and its process group (which we created)."""
    if p is None or p.poll() is not None:
        if p in _children:
            _children.remove(p)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=5)
    if p in _children:
        _children.remove(p)


def stop_all() -> None:
    for p in list(reversed(_children)):
        stop(p, timeout=5)


def proc_tree(pid: int) -> list[int]:
    """pid and its descendants (via /proc/*/stat ppid)."""
    parents: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo and len(out) < 1000:
        cur = todo.pop()
        out.append(cur)
        todo.extend(parents.get(cur, []))
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(p: subprocess.Popen) -> dict:
    """RSS of the gateway's process tree (taskset execs, so p.pid is the gateway itself)."""
    pids = proc_tree(p.pid)
    procs = []
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        procs.append(
            {
                "pid": pid,
                "comm": name,
                "vmrss_kb": _status_kb(pid, "VmRSS"),
                "vmhwm_kb": _status_kb(pid, "VmHWM"),
            }
        )
    return {
        "vmrss_mb": round(sum(x["vmrss_kb"] for x in procs) / 1024, 1),
        "vmhwm_mb": round(sum(x["vmhwm_kb"] for x in procs) / 1024, 1),
        "processes": procs,
    }


def http_post(port: int, body: dict, headers: dict, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        h = {"Content-Type": "application/json", **headers}
        conn.request("POST", PATH, body=json.dumps(body), headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def wait_first_success(
    port: int, headers: dict, p: subprocess.Popen, t0: float, timeout: float = STARTUP_TIMEOUT_S
) -> float:
    """Seconds from spawn (t0) to the first 200 on a chat completion. Raises on failure."""
    last = "no answer"
    deadline = t0 + timeout
    tries = 0
    while time.monotonic() < deadline and tries < 100_000:
        tries += 1
        if p.poll() is not None:
            raise RuntimeError(f"process exited with code {p.returncode} before serving")
        try:
            status, data = http_post(port, BODY, headers, timeout=5)
            if status == 200:
                return time.monotonic() - t0
            last = f"HTTP {status}: {data[:300]!r}"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.02)
    raise RuntimeError(f"no successful request within {timeout:.0f}s (last: {last})")


def validate(port: int, headers: dict) -> None:
    """One non-streaming and one streaming request must look like OpenAI answers."""
    status, data = http_post(port, BODY, headers)
    if status != 200:
        raise RuntimeError(f"non-streaming: HTTP {status}: {data[:300]!r}")
    doc = json.loads(data)
    if not doc.get("choices") or "mock upstream" not in (doc["choices"][0].get("message") or {}).get(
        "content", ""
    ):
        raise RuntimeError(f"non-streaming: unexpected body {data[:300]!r}")
    status, data = http_post(port, BODY_STREAM, headers)
    if status != 200:
        raise RuntimeError(f"streaming: HTTP {status}: {data[:300]!r}")
    text = data.decode("utf-8", "replace")
    n = text.count("data:")
    if "[DONE]" not in text or n < 5 or "mock" not in text:
        raise RuntimeError(f"streaming: unexpected body ({n} events) {text[:300]!r}")


def check_auth(port: int, headers_without_key: dict) -> dict:
    """What a request without credentials gets (401/403 => auth is on)."""
    try:
        status, _ = http_post(port, BODY, headers_without_key)
    except (OSError, http.client.HTTPException) as e:
        return {"status": None, "refused": None, "error": str(e)}
    return {"status": status, "refused": status in (401, 403)}


def db_rows(path: Path) -> dict:
    """Row counts of the non-empty tables of a SQLite file (evidence that run records were written)."""
    import sqlite3

    if not path.exists():
        return {"error": f"{path.name} not found"}
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            counts = {t: con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
        finally:
            con.close()
    except sqlite3.Error as e:
        return {"error": str(e)}
    return {t: n for t, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n}


# --------------------------------------------------------------------------- wrk
WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_min_us":%d,"lat_mean_us":%.1f,"lat_max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
"""


def _lua_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def wrk_script(tmp: Path, name: str, body: dict, headers: dict) -> Path:
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {_lua_str(json.dumps(body, separators=(',', ':')))}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    for k, v in headers.items():
        lines.append(f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}")
    path = tmp / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n" + WRK_DONE)
    return path


def run_wrk(port: int, script: Path, conns: int, duration: float, core: str = LOAD_CORE) -> dict:
    dur = max(1, round(duration))
    argv = [
        "taskset",
        "-c",
        core,
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{dur}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{PATH}",
    ]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=dur + 60)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed (rc {r.returncode}): {r.stdout[-500:]} {r.stderr[-500:]}")
    d = json.loads(line[len("WRKJSON ") :])
    secs = d["duration_us"] / 1e6
    ok = d["requests"] - d["err_status"]
    d["concurrency"] = conns
    d["rps"] = round(d["requests"] / secs, 1)
    d["ok_rps"] = round(ok / secs, 1)
    d["errors"] = d["err_connect"] + d["err_read"] + d["err_write"] + d["err_status"] + d["err_timeout"]
    for k in ("p50", "p90", "p99", "p999"):
        d[f"{k}_ms"] = round(d[f"{k}_us"] / 1000, 3)
    return d


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_ticks(pid: int, with_children: bool = True) -> int:
    """utime+stime (+ reaped children's cutime+cstime) of a process, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks


def cpu_snapshot(our_pids: list[int]) -> tuple[float, int, int, int]:
    """(time, system busy ticks, steal ticks, ticks used by us: this harness + its waited children
    (wrk) + the given process trees (mock, gateway))."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    busy = vals[0] + vals[1] + vals[2] + vals[5] + vals[6]  # user nice system irq softirq
    steal = vals[7] if len(vals) > 7 else 0
    ours = _proc_cpu_ticks(os.getpid())
    for root in our_pids:
        for pid in proc_tree(root):
            ours += _proc_cpu_ticks(pid)
    return time.monotonic(), busy, steal, ours


def foreign_cpu(before: tuple, after: tuple) -> dict:
    """CPU used during a point by processes that are not part of the benchmark, in cores."""
    secs = max(after[0] - before[0], 1e-6)
    busy = after[1] - before[1]
    ours = after[3] - before[3]
    return {
        "foreign_cores": round(max(busy - ours, 0) / _CLK_TCK / secs, 3),
        "steal_cores": round((after[2] - before[2]) / _CLK_TCK / secs, 3),
    }


def wait_quiet(our_pids: list[int], max_wait: float, threshold: float = 0.15) -> float:
    """Wait (at most max_wait s, in 1 s samples) until processes foreign to the benchmark use less
    than `threshold` cores; returns the foreign load of the last sample."""
    deadline = time.monotonic() + max_wait
    load = 0.0
    for _ in range(int(max_wait) + 1):
        before = cpu_snapshot(our_pids)
        time.sleep(1.0)
        load = foreign_cpu(before, cpu_snapshot(our_pids))["foreign_cores"]
        if load < threshold or time.monotonic() >= deadline:
            break
    return load


def measure(
    port: int,
    headers: dict,
    tmp: Path,
    tag: str,
    duration: float,
    warmup: float,
    repeat: int = 1,
    our_pids: Callable[[], list[int]] = list,
    quiet_wait: float = 0.0,
) -> dict:
    """The four points; with repeat > 1 each point runs `repeat` times and the run during which the
    least CPU was used by processes foreign to the benchmark is kept (all runs are in "runs")."""
    s_ns = wrk_script(tmp, f"{tag}-ns", BODY, headers)
    s_st = wrk_script(tmp, f"{tag}-st", BODY_STREAM, headers)
    if warmup > 0:
        run_wrk(port, s_ns, 8, warmup)
        run_wrk(port, s_st, 8, max(1, warmup / 2))
    out = {}
    for key, script, conns in (
        ("c1", s_ns, 1),
        ("c1_stream", s_st, 1),
        ("c32", s_ns, 32),
        ("c32_stream", s_st, 32),
    ):
        runs = []
        for _ in range(max(1, repeat)):
            pids = our_pids()
            if quiet_wait > 0:
                wait_quiet(pids, quiet_wait)
            before = cpu_snapshot(pids)
            d = run_wrk(port, script, conns, duration)
            d.update(foreign_cpu(before, cpu_snapshot(pids)))
            runs.append(d)
            warn = "  << other processes were busy" if d["foreign_cores"] > 0.1 else ""
            log(
                f"  {tag} {key:10s}: {d['ok_rps']:8.0f} ok req/s  p50 {d['p50_ms']:7.3f} ms"
                f"  p99 {d['p99_ms']:7.3f} ms  errors {d['errors']}"
                f"  foreign CPU {d['foreign_cores']:.2f} cores{warn}"
            )
        best = dict(min(runs, key=lambda r: r["foreign_cores"]))
        if len(runs) > 1:
            best["runs"] = [{k: r[k] for k in ("ok_rps", "p50_ms", "p99_ms", "foreign_cores")} for r in runs]
        out[key] = best
    return out


# --------------------------------------------------------------------------- gateways
@dataclass
class Started:
    proc: subprocess.Popen
    port: int
    headers: dict
    t0: float
    notes: list[str] = field(default_factory=list)
    version: str = ""
    auth_required: bool = False  # a request without credentials must be refused
    db_path: Path | None = None  # SQLite file whose table row counts are reported after the run


@dataclass
class Gateway:
    name: str
    is_peer: bool
    prepare: Callable[[Path, int, argparse.Namespace], Started]  # raises RuntimeError("...") to skip


def _aerodrome_bin() -> Path:
    return REPO / ".venv" / "bin" / "aerodrome"


def aerodrome_available() -> tuple[bool, str]:
    exe = _aerodrome_bin()
    if not exe.exists():
        return False, f"{exe} does not exist (gateway not installed yet)"
    try:
        r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"`aerodrome --help` failed: {e}"
    if r.returncode != 0:
        return False, f"`aerodrome --help` exited {r.returncode}: {(r.stderr or r.stdout)[-400:]}"
    if "serve" not in r.stdout:
        return False, "`aerodrome --help` lists no `serve` command"
    return True, ""


def start_aerodrome(tmp: Path, mock_port: int, args: argparse.Namespace) -> Started:
    ok, why = aerodrome_available()
    if not ok:
        raise RuntimeError(why)
    exe = str(_aerodrome_bin())
    wd = tmp / "aerodrome"
    wd.mkdir()
    cfg = wd / "aerodrome.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        database: {{url: "sqlite:///bench.db"}}
        departments:
          - {{id: bench, name: Bench, content_logging: metadata,
             limits: {{rpm: 100000000, tpm: 1000000000}}, budget: {{usd: 1000000, period: month}}}}
        providers:
          - {{name: mock, kind: openai, base_url: "http://{HOST}:{mock_port}/v1",
             api_key: "env:BENCH_UPSTREAM_KEY"}}
        deployments:
          - {{name: mock-model, provider: mock, model: mock-model-2024,
             prices: {{input_per_mtok: 0.15, output_per_mtok: 0.6}}, max_data_class: internal}}
        aliases:
          - {{name: chat-bench, deployments: [mock-model]}}
        """)
        + (f"telemetry: {{otlp_endpoint: {args.otlp!r}}}\n" if getattr(args, "otlp", None) else "")
        + (
            # scaled mode: limits and the budget in Redis (one admission script per request)
            f'redis: {{url: "{args.redis}", key_prefix: "bench-{os.getpid()}"}}\n' if args.redis else ""
        )
    )
    env = dict(os.environ, BENCH_UPSTREAM_KEY="sk-mock")
    keys_create = [
        exe,
        "keys",
        "create",
        "--config",
        str(cfg),
        "--department",
        "bench",
        "--role",
        "user",
        "--name",
        "bench",
    ]
    r = subprocess.run(keys_create, cwd=wd, env=env, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        # maybe the schema must be created first
        u = subprocess.run(
            [exe, "db", "upgrade", "--config", str(cfg)],
            cwd=wd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if u.returncode == 0:
            r = subprocess.run(keys_create, cwd=wd, env=env, capture_output=True, text=True, timeout=120)
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    if r.returncode != 0 or not lines:
        raise RuntimeError(
            f"`aerodrome keys create` failed (rc {r.returncode}): {(r.stderr or r.stdout)[-600:]}"
        )
    key = lines[-1]
    port = free_port()
    t0 = time.monotonic()
    p = spawn(
        [exe, "serve", "--config", str(cfg), "--host", HOST, "--port", str(port), "--workers", "1"],
        GATEWAY_CORE,
        cwd=wd,
        env=env,
        logfile=wd / "serve.log",
    )
    ver = ""
    try:
        vr = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('aerodrome'))",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        ver = vr.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return Started(
        p,
        port,
        {"Authorization": f"Bearer {key}"},
        t0,
        version=ver or "dev",
        auth_required=True,
        db_path=wd / "bench.db",
        notes=[
            "auth (API key), department rpm/tpm limits, monthly budget,"
            " run records (content_logging: metadata) in SQLite"
            + (f"; limits and budget in Redis ({args.redis})" if args.redis else "")
        ],
    )


def ensure_litellm() -> Path:
    venv = PEERS / "litellm" / "venv"
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    log(f"installing LiteLLM proxy {LITELLM_VERSION} into {venv} (own venv, not a project dependency)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    pip = str(venv / "bin" / "pip")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    r = subprocess.run(
        [pip, "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if r.returncode != 0:
        # The registry mirror may lack some exact pins of this release (seen: certifi>=2026.10.19,
        # litellm-proxy-extras==0.4.113): install the wheel without deps and its proxy requirements
        # with those pins relaxed.
        log("  pinned install failed; retrying with the release's requirements, unsatisfiable pins relaxed")
        subprocess.run([pip, "install", "-q", "packaging"], check=True, timeout=600)
        dl = venv.parent / "dl"
        subprocess.run(
            [pip, "download", "--no-deps", "-q", "-d", str(dl), f"litellm=={LITELLM_VERSION}"],
            check=True,
            timeout=600,
        )
        whl = next(dl.glob("litellm-*.whl"))
        code = textwrap.dedent("""\
            import sys, zipfile
            from packaging.requirements import Requirement
            z = zipfile.ZipFile(sys.argv[1])
            meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
            relax = {'certifi', 'litellm-proxy-extras'}
            for line in z.read(meta).decode().splitlines():
                if not line.startswith('Requires-Dist: '):
                    continue
                r = Requirement(line[len('Requires-Dist: '):])
                if r.marker and not r.marker.evaluate({'extra': 'proxy'}):
                    continue
                r.marker = None
                print(r.name if r.name in relax else str(r))
            """)
        req = subprocess.run(
            [str(venv / "bin" / "python"), "-c", code, str(whl)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        reqfile = venv.parent / "requirements.txt"
        reqfile.write_text(req.stdout)
        subprocess.run([pip, "install", "-q", "--no-deps", str(whl)], check=True, timeout=600)
        r = subprocess.run(
            [pip, "install", "-q", "-r", str(reqfile)], capture_output=True, text=True, timeout=1800
        )
        if r.returncode != 0 or not exe.exists():
            raise RuntimeError(f"pip install failed: {r.stderr[-600:]}")
    return exe


def start_litellm(tmp: Path, mock_port: int, args: argparse.Namespace) -> Started:
    try:
        exe = ensure_litellm()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, StopIteration) as e:
        raise RuntimeError(f"LiteLLM install failed: {e}") from e
    wd = tmp / "litellm"
    wd.mkdir()
    cfg = wd / "litellm.yaml"
    master = "sk-bench-master-0123456789"
    cfg.write_text(
        textwrap.dedent(f"""\
        model_list:
          - model_name: chat-bench
            litellm_params:
              model: openai/mock-model
              api_base: http://{HOST}:{mock_port}/v1
              api_key: sk-mock
        general_settings:
          master_key: {master}
        litellm_settings:
          telemetry: false
        """)
    )
    env = dict(
        os.environ,
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        NO_DOCS="True",
        DISABLE_ADMIN_UI="True",
    )
    env.pop("DATABASE_URL", None)
    port = free_port()
    t0 = time.monotonic()
    p = spawn(
        [str(exe), "--config", str(cfg), "--host", HOST, "--port", str(port), "--num_workers", "1"],
        GATEWAY_CORE,
        cwd=wd,
        env=env,
        logfile=wd / "litellm.log",
    )
    ver = subprocess.run(
        [str(exe.parent / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    return Started(
        p,
        port,
        {"Authorization": f"Bearer {master}"},
        t0,
        version=ver,
        auth_required=True,
        notes=[
            "auth: master key only (no database => no virtual keys, no budgets/limits, no spend logs)",
            "uvicorn, 1 worker, default logging (LITELLM_LOG=ERROR), local model cost map",
        ],
    )


def ensure_portkey() -> tuple[Path, str]:
    folder = PEERS / "portkey"
    pkg = folder / "node_modules" / "@portkey-ai" / "gateway"
    script = pkg / "build" / "start-server.js"
    if not script.exists():
        if not shutil.which("npm"):
            raise RuntimeError("npm not found")
        log(
            f"installing @portkey-ai/gateway@{PORTKEY_VERSION} into {folder}"
            " (own node folder, not a project dependency)"
        )
        folder.mkdir(parents=True, exist_ok=True)
        # Portkey declares "@hono/node-server": "^1.3.3", which resolves to a release whose
        # lightweight Response shares the upstream fetch response's immutable Headers: every
        # proxied streaming response then fails with "TypeError: immutable" (same class as
        # Portkey-AI/gateway#1389 / #1550). Portkey's own repository builds against 1.13.5
        # (it ships patches/@hono+node-server+1.13.5.patch), so override to that release.
        (folder / "package.json").write_text(
            json.dumps(
                {
                    "name": "portkey-bench",
                    "private": True,
                    "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
                    "overrides": {"@hono/node-server": HONO_NODE_SERVER},
                },
                indent=2,
            )
            + "\n"
        )
        r = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if r.returncode != 0 or not script.exists():
            raise RuntimeError(f"npm install failed: {(r.stderr or r.stdout)[-600:]}")
    version = json.loads((pkg / "package.json").read_text()).get("version", "?")
    hono = pkg / "node_modules" / "@hono" / "node-server" / "package.json"
    if not hono.exists():
        hono = folder / "node_modules" / "@hono" / "node-server" / "package.json"
    if hono.exists():
        version += f" (@hono/node-server {json.loads(hono.read_text()).get('version', '?')})"
    return script, version


def start_portkey(tmp: Path, mock_port: int, args: argparse.Namespace) -> Started:
    if not shutil.which("node"):
        raise RuntimeError("node not found")
    try:
        script, ver = ensure_portkey()
    except (subprocess.TimeoutExpired, OSError) as e:
        raise RuntimeError(f"Portkey install failed: {e}") from e
    wd = tmp / "portkey"
    wd.mkdir()
    port = free_port()
    t0 = time.monotonic()
    p = spawn(
        ["node", str(script), f"--port={port}", "--headless"],
        GATEWAY_CORE,
        cwd=wd,
        env=dict(os.environ),
        logfile=wd / "portkey.log",
    )
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://{HOST}:{mock_port}/v1",
        "Authorization": "Bearer sk-mock",
    }
    return Started(
        p,
        port,
        headers,
        t0,
        version=ver,
        notes=[
            "no auth of its own (OSS gateway forwards the provider key), no logging store, no budgets",
            "its stream transformer waits 25 ms before the first chunk (setTimeout in its build), hence the"
            " ~27 ms streaming latency at c=1",
            f"@hono/node-server overridden to {HONO_NODE_SERVER}: the version npm resolves breaks streaming",
        ],
    )


GATEWAYS = [
    Gateway("aerodrome", False, start_aerodrome),
    Gateway("litellm", True, start_litellm),
    Gateway("portkey", True, start_portkey),
]


# --------------------------------------------------------------------------- main
def mock_python() -> str:
    """Prefer an interpreter that has uvloop for the mock."""
    for cand in (sys.executable, str(REPO / ".venv" / "bin" / "python")):
        if (
            Path(cand).exists()
            and subprocess.run([cand, "-c", "import uvloop"], capture_output=True, timeout=30).returncode == 0
        ):
            return cand
    return sys.executable


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout}s")


def summarize(name: str, res: dict, direct: dict) -> dict:
    m = res["measure"]
    s = {
        "startup_s": round(res["startup_s"], 3),
        "added_p50_ms": round(m["c1"]["p50_ms"] - direct["c1"]["p50_ms"], 3),
        "added_p99_ms": round(m["c1"]["p99_ms"] - direct["c1"]["p99_ms"], 3),
        "added_p50_stream_ms": round(m["c1_stream"]["p50_ms"] - direct["c1_stream"]["p50_ms"], 3),
        "added_p99_stream_ms": round(m["c1_stream"]["p99_ms"] - direct["c1_stream"]["p99_ms"], 3),
        "rps_c32": m["c32"]["ok_rps"],
        "rps_c32_stream": m["c32_stream"]["ok_rps"],
        "p99_c32_ms": m["c32"]["p99_ms"],
        "rss_idle_mb": res["mem_idle"]["vmrss_mb"],
        "rss_mb": res["mem_after"]["vmrss_mb"],
        "hwm_mb": res["mem_after"]["vmhwm_mb"],
        "errors": sum(m[k]["errors"] for k in m),
        "foreign_cpu_max": max(m[k].get("foreign_cores", 0.0) for k in m),
    }
    return s


ROWS = [
    ("startup_s", "first request after start (s)", "{:.2f}", "<= 2"),
    ("added_p50_ms", "added p50, c=1 (ms)", "{:.3f}", "<= 1"),
    ("added_p99_ms", "added p99, c=1 (ms)", "{:.3f}", "<= 5"),
    ("added_p50_stream_ms", "added p50 stream, c=1 (ms)", "{:.3f}", ""),
    ("added_p99_stream_ms", "added p99 stream, c=1 (ms)", "{:.3f}", ""),
    ("rps_c32", "req/s c=32", "{:.0f}", ">= 1000"),
    ("rps_c32_stream", "req/s c=32 stream", "{:.0f}", ">= 1000"),
    ("p99_c32_ms", "p99 at c=32 (ms)", "{:.1f}", ""),
    ("rss_idle_mb", "RSS idle (MB)", "{:.1f}", ""),
    ("rss_mb", "RSS after load (MB)", "{:.1f}", "<= 150"),
    ("hwm_mb", "VmHWM after load (MB)", "{:.1f}", "<= 150"),
    ("errors", "errors (all points)", "{:d}", "0"),
    ("foreign_cpu_max", "foreign CPU, worst point (cores)", "{:.2f}", "~0"),
]


def print_table(summaries: dict[str, dict], direct: dict, notes: dict[str, list[str]]) -> str:
    names = list(summaries)
    w0 = 32
    out = []
    hdr = f"{'metric':{w0}s}" + "".join(f"{n:>14s}" for n in names) + f"{'target':>10s}"
    out.append(hdr)
    out.append("-" * len(hdr))
    for key, label, fmt, target in ROWS:
        cells = []
        for n in names:
            v = summaries[n].get(key)
            cells.append(f"{(fmt.format(v) if v is not None else '-'):>14s}")
        out.append(f"{label:{w0}s}" + "".join(cells) + f"{target:>10s}")
    out.append("")
    out.append(
        f"direct (wrk -> mock): c=1 p50 {direct['c1']['p50_ms']:.3f} ms p99 {direct['c1']['p99_ms']:.3f} ms; "
        f"stream p50 {direct['c1_stream']['p50_ms']:.3f} ms; c=32 {direct['c32']['ok_rps']:.0f} req/s, "
        f"stream {direct['c32_stream']['ok_rps']:.0f} req/s"
    )
    if "aerodrome" in summaries:
        a = summaries["aerodrome"]
        for n in names:
            if n == "aerodrome":
                continue
            p = summaries[n]
            parts = []
            for key, label in (
                ("added_p50_ms", "added p50"),
                ("added_p99_ms", "added p99"),
                ("rps_c32", "req/s"),
                ("rps_c32_stream", "req/s stream"),
                ("rss_mb", "RSS"),
                ("startup_s", "startup"),
            ):
                if p.get(key) and a.get(key) is not None and p[key] > 0:
                    parts.append(f"{label} x{a[key] / p[key]:.2f}")
                else:
                    parts.append(f"{label} n/a")
            out.append(f"ratio aerodrome / {n}: " + ", ".join(parts))
        out.append("(latency, RSS, startup: below 1 = aerodrome better; req/s: above 1 = aerodrome better)")
    for n in names:
        for note in notes.get(n, []):
            out.append(f"{n}: {note}")
    text = "\n".join(out)
    print(text, flush=True)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description="Benchmark Aerodrome against a local mock upstream, with peers.")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured point (default 10)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per point; the run with the least CPU used by foreign processes is kept (default 1)",
    )
    ap.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of warm-up load per gateway (default 2)"
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=15.0,
        help="before each run, wait up to S s for other processes to stop using CPU (default 15; 0: off)",
    )
    ap.add_argument(
        "--peers",
        action="store_true",
        help="also run LiteLLM proxy and Portkey gateway (installed into bench/.peers)",
    )
    ap.add_argument(
        "--only",
        choices=[g.name for g in GATEWAYS],
        action="append",
        help="run only this gateway (repeatable)",
    )
    ap.add_argument(
        "--otlp",
        default=None,
        help="Aerodrome only: export a span per call to this OTLP/HTTP endpoint (telemetry.otlp_endpoint)",
    )
    ap.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="run Aerodrome in scaled mode: limits and budgets in this Redis (e.g. redis://127.0.0.1:6379/0)",
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="results JSON path (default bench/results/gateway-<date>.json)"
    )
    args = ap.parse_args()

    if not shutil.which("wrk"):
        print("wrk not found: install it (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        log("WARNING: fewer than 2 cores; pinning gateway and load to the same core")
        global LOAD_CORE
        LOAD_CORE = GATEWAY_CORE

    selected = [g for g in GATEWAYS if (g.name in args.only if args.only else (not g.is_peer or args.peers))]
    tmp = Path(tempfile.mkdtemp(prefix="aerodrome-bench-"))
    results: dict = {
        "date": _dt.date.today().isoformat(),
        "machine": describe(),
        "method": {
            "gateway_core": GATEWAY_CORE,
            "load_core": LOAD_CORE,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "quiet_wait_s": args.quiet_wait,
            "load_generator": subprocess.run(
                ["wrk", "-v"], capture_output=True, text=True
            ).stdout.splitlines()[0:1],
            "body": BODY,
        },
        "targets": TARGETS,
        "reference": REFERENCE,
        "gateways": {},
        "skipped": {},
    }
    summaries: dict[str, dict] = {}
    try:
        mock_port = free_port()
        py = mock_python()
        mock = spawn(
            [py, str(BENCH / "mock_upstream.py"), "--port", str(mock_port)],
            LOAD_CORE,
            logfile=tmp / "mock.log",
        )
        wait_port(mock_port)
        log(f"mock upstream on port {mock_port}, core {LOAD_CORE} ({(tmp / 'mock.log').read_text().strip()})")
        validate(mock_port, {})
        # mock capacity with the load generator on the other core: shows the mock is not the bottleneck
        cap = run_wrk(
            mock_port, wrk_script(tmp, "cap", BODY, {}), 32, min(args.duration, 5), core=GATEWAY_CORE
        )
        cap_st = run_wrk(
            mock_port, wrk_script(tmp, "capst", BODY_STREAM, {}), 32, min(args.duration, 5), core=GATEWAY_CORE
        )
        log(
            f"mock capacity (wrk on core {GATEWAY_CORE}, c=32): {cap['ok_rps']:.0f} req/s,"
            f" stream {cap_st['ok_rps']:.0f} req/s"
        )
        results["mock_capacity"] = {"c32": cap, "c32_stream": cap_st}
        log("direct baseline (wrk -> mock, both on core 1)")
        direct = measure(
            mock_port,
            {},
            tmp,
            "direct",
            args.duration,
            args.warmup,
            args.repeat,
            lambda: [mock.pid],
            args.quiet_wait,
        )
        results["direct"] = direct

        for gw in selected:
            log(f"=== {gw.name}")
            st: Started | None = None
            try:
                st = gw.prepare(tmp, mock_port, args)
                startup = wait_first_success(st.port, st.headers, st.proc, st.t0)
                log(
                    f"  {gw.name} {st.version}: first request served {startup:.2f}s after spawn"
                    f" (pid {st.proc.pid})"
                )
                validate(st.port, st.headers)
                auth = check_auth(
                    st.port, {k: v for k, v in st.headers.items() if k.lower() != "authorization"}
                )
                if st.auth_required and auth["refused"] is not True:
                    raise RuntimeError(f"auth is expected on but a request without a key got {auth}")
                mem_idle = memory(st.proc)
                m = measure(
                    st.port,
                    st.headers,
                    tmp,
                    gw.name,
                    args.duration,
                    args.warmup,
                    args.repeat,
                    lambda st=st: [mock.pid, st.proc.pid],
                    args.quiet_wait,
                )
                if st.proc.poll() is not None:
                    raise RuntimeError(f"process died during the load (rc {st.proc.returncode})")
                mem_after = memory(st.proc)
                res = {
                    "version": st.version,
                    "notes": st.notes,
                    "startup_s": startup,
                    "mem_idle": mem_idle,
                    "mem_after": mem_after,
                    "measure": m,
                    "auth_check": auth,
                }
                res["summary"] = summarize(gw.name, res, direct)
                results["gateways"][gw.name] = res
                summaries[gw.name] = res["summary"]
                log(
                    f"  {gw.name}: RSS idle {mem_idle['vmrss_mb']} MB, after load {mem_after['vmrss_mb']} MB"
                    f" (HWM {mem_after['vmhwm_mb']} MB)"
                )
            except (
                RuntimeError,
                OSError,
                subprocess.SubprocessError,
                ValueError,
                http.client.HTTPException,
            ) as e:
                why = f"{type(e).__name__}: {e}" if not isinstance(e, RuntimeError) else str(e)
                logtail = ""
                if st is not None:
                    for lf in (tmp / gw.name).glob("*.log"):
                        logtail = lf.read_text(errors="replace")[-1500:]
                log(f"  SKIPPED {gw.name}: {why}")
                if logtail:
                    print(textwrap.indent(logtail, "    | "), flush=True)
                results["skipped"][gw.name] = why
            finally:
                if st is not None:
                    stop(st.proc)
                    if st.db_path is not None and gw.name in results["gateways"]:
                        rows = db_rows(st.db_path)
                        results["gateways"][gw.name]["db_rows"] = rows
                        log(f"  {gw.name} database rows after the run: {rows}")
        stop(mock)

        print()
        table = (
            print_table(summaries, direct, {n: g["notes"] for n, g in results["gateways"].items()})
            if summaries
            else "no gateway measured"
        )
        if not summaries:
            print(table)
        for n, why in results["skipped"].items():
            print(f"skipped {n}: {why}")
        results["table"] = table
        out = args.out or RESULTS / f"gateway-{results['date']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {out}")
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        if args.redis:
            forget_redis_keys(args.redis, f"bench-{os.getpid()}")
    return 0


def forget_redis_keys(url: str, prefix: str) -> None:
    """Remove the keys the scaled-mode run left (budget accounts do not expire by themselves)."""
    import redis

    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url, socket_timeout=2) as r:
        names = list(r.scan_iter(match="{" + prefix + "}:*", count=1000))
        if names:
            r.delete(*names)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main())
