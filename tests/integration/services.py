"""Private servers a test may stop and start: a Redis and a PostgreSQL cluster on free ports.

The machine's shared Redis (6379) and PostgreSQL (5432) are never stopped by a test: fault
tests start their own here, in the test's temporary folder, and stop them afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.harness import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SHARED_REDIS = "redis://127.0.0.1:6379/0"


def _wait_port(port: int, up: bool, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            listening = s.connect_ex(("127.0.0.1", port)) == 0
        if listening == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not become {'open' if up else 'closed'}")


class PrivateRedis:
    """``redis-server`` on its own port, no persistence (a restart loses every key, as after a crash)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        _wait_port(self.port, up=False)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def shared_redis_available() -> bool:
    try:
        with redis.Redis.from_url(SHARED_REDIS, socket_timeout=1, socket_connect_timeout=1) as r:
            return bool(r.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key a test wrote under ``{prefix}`` (and the response cache's ``prefix:cache:``)."""
    with (
        contextlib.suppress(redis.ConnectionError, redis.TimeoutError),
        redis.Redis.from_url(url, socket_timeout=2) as r,
    ):
        names = list(r.scan_iter(match="{" + prefix + "}:*", count=1000))
        names += list(r.scan_iter(match=prefix + ":cache:*", count=1000))
        if names:
            r.delete(*names)


def unique_prefix() -> str:
    return f"aerotest-{uuid.uuid4().hex[:10]}"


class PrivatePostgres:
    """A PostgreSQL 15 cluster of its own (initdb + pg_ctl, run as the postgres user) on a free port."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.root = root
        self.data = root / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        cmd = list(argv)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "pg.log"),
            "-o",
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off",
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


def private_postgres_available() -> bool:
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or shutil.which("runuser") is not None)


@contextlib.contextmanager
def private_postgres(root: Path) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(root)
    server.init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
