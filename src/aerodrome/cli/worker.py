"""``aerodrome worker``: run background jobs (the scaled mode's job processes) and ``aerodrome purge``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console

from aerodrome.cli.workspace import ConfigOption, load, opened

out = Console()


def worker(
    config: Path | None = ConfigOption,
    threads: int | None = typer.Option(
        None, "--threads", "-t", min=1, max=32, help="jobs run at a time (default: jobs.threads)"
    ),
    once: bool = typer.Option(False, "--once", help="run what is due and queued, then exit"),
) -> None:
    """Run queued jobs (ingestion, rollups, retention, evaluations) until stopped (SIGTERM, Ctrl-C)."""
    from aerodrome.jobs.standalone import StandaloneJobs
    from aerodrome.monitoring.logs import configure

    settings, cfg, _ = load(config)
    configure(settings.log_level, json=settings.log_json)
    if threads is not None:
        cfg = cfg.model_copy(update={"jobs": cfg.jobs.model_copy(update={"threads": threads})})
    with opened(settings, cfg) as engine:  # refuses a stale schema like the servers do
        jobs = StandaloneJobs(engine, cfg)
        worker = jobs.service.worker
        assert worker is not None
        try:
            if once:
                worker.schedule_due()
                ran = 0
                while worker.run_once():
                    ran += 1
                out.print(f"ran {ran} job(s)", highlight=False)
                return
            stop = threading.Event()

            def on_signal(signum: int, frame: FrameType | None) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            worker.start()
            out.print(
                f"worker {worker.name} running {', '.join(jobs.service.kinds.names())}", highlight=False
            )
            stop.wait()
        finally:
            jobs.close()


def purge(config: Path | None = ConfigOption) -> None:
    """Apply the retention policy now (the retention job does it every retention.interval_s)."""
    from aerodrome.monitoring.retention import purge as run_purge

    settings, cfg, _ = load(config)
    if not cfg.retention.enabled:
        out.print("no retention policy is configured (retention: in the config file); nothing to purge")
        return
    with opened(settings, cfg) as engine:
        counts = run_purge(engine, cfg.retention)
    out.print(
        f"cleared the content of {counts['content_cleared']} run(s), deleted {counts['runs_deleted']} run(s)",
        highlight=False,
    )
