"""The composition root of the running daemon: builds one engine from a configuration and
runs it as `run` (and `demo`) and `once` do: the state lock, the signals, the exit code.

``cli`` parses the command line and calls ``serve_daemon`` or ``run_once``; everything the
engine is made of is chosen here and nowhere else, including the process's one stop event
(set by SIGTERM/SIGINT through ``Service.stop``; every loop and wait of the engine ends on
it). Signal handlers only set events: logging in one could deadlock on the log's lock.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any

import structlog

from procore_hotfolder.alerts import CurrentAlerts, DeliveryPolicy
from procore_hotfolder.config import Config, Current
from procore_hotfolder.engine.heartbeat import Notifier
from procore_hotfolder.engine.runmode import Daemon, Once, RunMode, RunSummary
from procore_hotfolder.engine.service import Service
from procore_hotfolder.engine.timing import TIMING_VARIABLE, Timing
from procore_hotfolder.exitcodes import EXIT_FAILURE, EXIT_OK
from procore_hotfolder.logs import configure_logging
from procore_hotfolder.metrics import attach_metrics
from procore_hotfolder.procore import ProcoreClient
from procore_hotfolder.procore.governor import RateGovernor
from procore_hotfolder.procore.projects import list_projects
from procore_hotfolder.state.journal import Journal
from procore_hotfolder.state.ledger import Ledger
from procore_hotfolder.state.statelock import StateLock
from procore_hotfolder.upload.holds import HoldBoard
from procore_hotfolder.upload.progress import Progress
from procore_hotfolder.upload.project_numbers import ProjectNumbers
from procore_hotfolder.upload.uploader import Uploader
from procore_hotfolder.watch.writers import Writers


@dataclass
class Engine:
    """Everything one daemon generation needs, built from one configuration."""

    config: Current
    journal: Journal
    client: ProcoreClient
    governor: RateGovernor
    service: Service
    alerts: CurrentAlerts
    #: Project numbers of routing rules, looked up by every worker.
    project_numbers: ProjectNumbers

    def close(self) -> None:
        self.client.close()
        self.journal.close()


def build_engine(config: Config, *, once: bool, notifier: Notifier | None = None,
                 load_config: Callable[[], Config] | None = None,
                 on_reload: Sequence[Callable[[Config], None]] = (),
                 alert_policy: DeliveryPolicy | None = None) -> Engine:
    """Everything one daemon needs, from ``config``; ``once`` chooses the run mode.
    ``load_config`` re-reads the configuration file on a reload (SIGHUP); without it a
    reload is refused. ``alert_policy``: how the alerts retry (tests shorten it). Its waits
    are ``Timing()``'s, changed by ``TIMING_VARIABLE`` (tests only)."""
    timing = _timing()
    current = Current(config)  # the configuration in force: set by the reload alone
    # Told of failures (the uploader), pauses and the backlog (the publisher's tick);
    # started and closed by the service; a reload that changes [alerts] rebuilds them.
    alerts = CurrentAlerts(config, policy=alert_policy)
    stopping = threading.Event()  # the process's one stop event
    # Why work waits: the pipeline, the governor and the scanner report.
    holds = HoldBoard(timing.pause_checks)
    governor = RateGovernor(stop=stopping, ceiling_per_hour=config.daemon.max_api_calls_per_hour,
                            on_pause=holds.api_paused)
    client = ProcoreClient(config.procore, governor, policy=timing.requests,
                           sleep=governor.sleep)
    journal = Journal.open(config.daemon.state_dir)
    progress = Progress(log_every=timing.progress_every)
    writers = Writers()
    mode: RunMode = Once(config.daemon.max_attempts, stopping) if once else Daemon()
    # One list of the company's projects for every worker: a routed file costs no call to
    # find its project once the list is read (a reload drops it; `retry` lets it be read).
    numbers = ProjectNumbers(lambda: list_projects(client, current().procore.company_id))
    uploader = Uploader(current, journal, Ledger(config.daemon.state_dir), client,
                        progress=progress, backoff=timing.file_backoff,
                        outage=timing.outage_spacing, stopping=stopping.is_set, pauses=holds,
                        writers=writers, limit=mode, failures=alerts, numbers=numbers)
    service = Service(current, journal, uploader, governor, holds=holds, stop=stopping,
                      mode=mode, paused_rows_wait=not once, timing=timing,
                      progress=progress, writers=writers, notifier=notifier, alerts=alerts,
                      load_config=load_config, on_reload=[
                          lambda new: client.reconfigure(new.procore),
                          lambda new: governor.set_ceiling(new.daemon.max_api_calls_per_hour),
                          alerts.reconfigure,
                          lambda _new: numbers.forget(),
                          *on_reload])
    attach_metrics(config.daemon.metrics_listen, tuple(str(f.path) for f in config.folders),
                   governor, client, uploader, service, alerts)
    return Engine(current, journal, client, governor, service, alerts, numbers)


def _timing() -> Timing:
    """Production timing, unless a test set ``TIMING_VARIABLE`` (then logged, each value)."""
    timing = Timing.from_environment(os.environ)
    if timing != Timing():
        structlog.get_logger(__name__).warning("test_timing", variable=TIMING_VARIABLE,
                                               **asdict(timing))
    return timing


def _lock_or_fail(config: Config) -> StateLock | None:
    lock = StateLock(config.daemon.state_dir)
    if not lock.acquire():
        print(f"another procore-hotfolder is already using {config.daemon.state_dir} "
              f"(pid {lock.holder()})", file=sys.stderr)
        return None
    return lock


@contextmanager
def _running(config: Config, **build: Any) -> Iterator[Engine | None]:
    """The state lock and the engine (None when another process holds the lock), with
    SIGTERM and SIGINT stopping it and SIGUSR1 (what `retry` sends) asking for a scan of
    every folder, a project number not found read afresh once (the retried files may name
    a project just created); closed and unlocked on the way out."""
    lock = _lock_or_fail(config)
    if lock is None:
        yield None
        return
    engine = build_engine(config, **build)

    def on_stop(signum: int, _: FrameType | None) -> None:
        # No logging here: the handler may interrupt the main thread inside a log write,
        # whose lock it would then wait for forever. The service logs the signal.
        engine.service.stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    # Not a reload: a configuration being edited is not read (`once` scans only once, and
    # is not ended by it either).
    def on_retry(_signum: int, _: FrameType | None) -> None:
        engine.project_numbers.allow_refresh()
        engine.service.request_rescan()

    signal.signal(signal.SIGUSR1, on_retry)
    try:
        yield engine
    finally:
        engine.close()
        lock.release()


def serve_daemon(config: Config, reload_config: Callable[[], Config], *,
                 notifier: Notifier | None = None,
                 on_ready: Callable[[Engine], None] | None = None) -> int:
    """The daemon, as `run` (and `demo`) run it: the state lock, SIGTERM/SIGINT stop it,
    SIGHUP reloads the configuration without stopping work in flight, SIGUSR1 scans every
    folder again. Returns the exit code."""

    def relog(new: Config) -> None:
        configure_logging(new.daemon.log_level)

    with _running(config, once=False, notifier=notifier, load_config=reload_config,
                  on_reload=[relog]) as engine:
        if engine is None:
            return EXIT_FAILURE
        service = engine.service
        signal.signal(signal.SIGHUP, lambda _signum, _frame: service.request_reload())
        if on_ready is not None:
            on_ready(engine)
        service.run()
    return EXIT_OK


def run_once(config: Config) -> int:
    """`once`: every file now in the folders, then exit (1 when any failed or was not
    uploaded); SIGTERM/SIGINT stop it early."""
    with _running(config, once=True) as engine:
        if engine is None:
            return EXIT_FAILURE
        summary = engine.service.run()
    _report_summary(summary)
    return summary.exit_code


def _report_summary(summary: RunSummary) -> None:
    """The outcome as the last log line on stdout (``once_finished``) and, for people, as
    plain lines on stderr."""
    groups = {
        "failed": summary.failed,
        "not_uploaded": summary.not_uploaded,
        "left_in_place": summary.left_in_place,
    }
    structlog.get_logger("procore_hotfolder.cli").info(
        "once_finished", uploaded=len(summary.archived), exit_code=summary.exit_code,
        **{group: [{"path": str(p), "reason": r} for p, r in files]
           for group, files in groups.items()})
    lines = [f"uploaded {len(summary.archived)}, failed {len(summary.failed)}, "
             f"not uploaded {len(summary.not_uploaded)}"]
    lines += [f"{group.replace('_', ' ')}: {p}: {r}"
              for group, files in groups.items() for p, r in files]
    print("\n".join(lines), file=sys.stderr)
