"""The delivery loop: alerts go out on a thread of their own and never hold up an upload.

``Alerts`` is what the engine calls (``file_failed``, ``holds``, ``backlog``), from any
thread; each call only takes a lock for a moment and returns. A failure goes into a bounded
inbox (``DeliveryPolicy.inbox_size``): one that does not fit is counted
(``procore_hotfolder_alerts_total{outcome="dropped"}``) and logged (``alert_dropped``), never
waited for. Pauses and the backlog are state, not events: the latest report replaces the one
before, so they cannot crowd failures out.

The thread ("alerts") feeds the reports to the ``Batcher``, turns each batch that is due
into one ``Message`` and hands it to every channel. Each channel keeps its messages in order
(at most ``DeliveryPolicy.waiting_messages``; past that the oldest is dropped and counted):
the first is tried, and while it fails the others wait behind it (the channel is down for
them too). A failure worth retrying is tried again with backoff (``retry_in``) until the
message is ``give_up_seconds`` old; then, or at once when retrying cannot help, it is counted
``failed`` and logged (``alert_failed``). Each delivery is logged (``alert_sent``), each failed
try too (``alert_delivery_failed``), never with the webhook's URL or the SMTP password.

``close(timeout)`` stops taking reports, puts what the batcher holds into a last message
(the window is not waited for: ``once`` sends what it has before it exits), keeps trying what
is undelivered until ``timeout``, counts what is left as failed, and joins the thread.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from procore_hotfolder.alerts.batcher import Batcher, Thresholds
from procore_hotfolder.alerts.events import FileFailed, HeldFolder
from procore_hotfolder.alerts.message import Commands, Message, Renderer
from procore_hotfolder.alerts.senders import Sender
from procore_hotfolder.errors import AlertDeliveryFailed
from procore_hotfolder.metrics import NULL_METRICS, MetricsHooks
from procore_hotfolder.model import Backoff

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the loop tries, and how much it keeps. An immutable value."""

    backoff: Backoff = field(default_factory=lambda: Backoff(base=10.0, cap=600.0, jitter=0.2))
    #: A message still undelivered this long after it was made is given up.
    give_up_seconds: float = 6 * 3600.0
    #: Failures waiting for the loop.
    inbox_size: int = 10_000
    #: Messages waiting for one channel.
    waiting_messages: int = 100

    def retry_in(self, attempts: int, retry_after: float | None, rand: float) -> float:
        """Seconds before the next try of a message that failed ``attempts`` times."""
        return self.backoff.delay(attempts, retry_after=retry_after, rand=rand)


@dataclass
class _Waiting:
    """A message waiting for one channel."""

    message: Message
    made: float
    events: int
    attempts: int = 0
    next_try: float = 0.0


@dataclass
class _Channel:
    sender: Sender
    waiting: deque[_Waiting] = field(default_factory=deque)


class Alerts:
    """The alerts of one daemon: see the module docstring. ``start`` it, ``close`` it."""

    def __init__(self, senders: Sequence[Sender], thresholds: Thresholds, renderer: Renderer,
                 *, policy: DeliveryPolicy | None = None, metrics: MetricsHooks = NULL_METRICS,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random) -> None:
        self.metrics = metrics
        self._channels = [_Channel(sender) for sender in senders]
        self._batcher = Batcher(thresholds)
        self._renderer = renderer
        self._policy = policy or DeliveryPolicy()
        self._clock = clock
        self._rand = rand
        self._wake = threading.Condition()
        self._inbox: deque[FileFailed] = deque()
        self._holds: tuple[float, tuple[HeldFolder, ...]] | None = None
        self._backlog: tuple[float, Path | None, float] | None = None
        self._closing_by: float | None = None
        self._left_undelivered = 0
        self._thread: threading.Thread | None = None

    # --- what the engine calls (any thread; never blocks) ----------------------------------

    def file_failed(self, now: float, path: Path, *, reason: str, detail: str, attempts: int,
                    status: int | None = None, request_id: str | None = None,
                    failed_path: Path | None = None) -> None:
        """A file failed for good at ``now`` (it is in ``failed_path``, or in place at
        ``path`` when None): ``reason`` and ``detail`` (Procore's words), ``attempts``, the
        HTTP ``status`` and ``request_id`` when Procore answered."""
        event = FileFailed(now, path, reason, detail, attempts, status, request_id,
                           failed_path)
        with self._wake:
            queued = self._closing_by is None and len(self._inbox) < self._policy.inbox_size
            if queued:
                self._inbox.append(event)
                self._wake.notify()
        if not queued:
            self.metrics.alert("dropped")
            log.warning("alert_dropped", alert="file_failed", path=path,
                        why="closed" if self._closing_by is not None else "queue_full")

    def holds(self, now: float, holds: Iterable[HeldFolder]) -> None:
        """The pauses in force at ``now``, all of them (a folder left out has resumed)."""
        with self._wake:
            self._holds = (now, tuple(holds))
            self._wake.notify()

    def backlog(self, now: float, oldest_path: Path | None,
                oldest_age_seconds: float) -> None:
        """The oldest file waiting or queued at ``now`` and its age (None: nothing waits)."""
        with self._wake:
            self._backlog = (now, oldest_path, oldest_age_seconds)
            self._wake.notify()

    # --- life -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="alerts", daemon=True)
        self._thread.start()
        log.info("alerts_started", channels=[c.sender.describe() for c in self._channels])

    def retire(self, timeout: float) -> None:
        """Begin to close without waiting (a reload replaced these alerts): from now on no
        report is taken; what is pending goes out on the thread, tried until ``timeout``
        seconds have passed. ``close`` joins it. Idempotent."""
        with self._wake:
            if self._closing_by is None:
                self._closing_by = time.monotonic() + max(timeout, 0.0)
            self._wake.notify()

    def close(self, timeout: float) -> bool:
        """Send what is pending (the open window too), trying until ``timeout`` seconds have
        passed (or what ``retire`` gave); stop and join the thread. True when nothing was
        left undelivered at the stop. Idempotent."""
        self.retire(timeout)
        if self._thread is None:  # never started: deliver here
            self._loop()
        else:
            # A send in progress at the deadline ends by its own timeout.
            longest = max((c.sender.timeout for c in self._channels), default=0.0)
            self._thread.join(timeout=max(timeout, 0.0) + longest + 5.0)
        return self._left_undelivered == 0 and not any(c.waiting for c in self._channels)

    # --- the thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                failures, self._inbox = list(self._inbox), deque()
                holds, self._holds = self._holds, None
                backlog, self._backlog = self._backlog, None
                closing_by = self._closing_by
            now = self._clock()
            for event in failures:
                self._batcher.file_failed(now, event)
            if holds is not None:  # at the time the engine saw them
                self._batcher.holds(*holds)
            if backlog is not None:
                self._batcher.backlog(*backlog)
            batch = self._batcher.due(now) if closing_by is None else self._batcher.flush(now)
            if batch is not None:
                self._queue(self._renderer.batch(batch), now, len(batch.events) + batch.omitted)
            for channel in self._channels:
                self._deliver(channel)
            if closing_by is not None and (time.monotonic() >= closing_by
                                           or not any(c.waiting for c in self._channels)):
                self._give_up_all()
                return
            self._sleep(closing_by)

    def _sleep(self, closing_by: float | None) -> None:
        """Until the next window closes, the next retry is due or a report arrives."""
        times = [w.next_try for c in self._channels for w in list(c.waiting)[:1]]
        due = self._batcher.next_due()
        if due is not None:
            times.append(due)
        wait = max(0.0, min(times) - self._clock()) if times else None
        if closing_by is not None:
            left = max(0.0, closing_by - time.monotonic())
            wait = left if wait is None else min(wait, left)
        with self._wake:
            if self._inbox or self._holds or self._backlog or \
                    (self._closing_by is not None) != (closing_by is not None):
                return
            self._wake.wait(timeout=wait)

    def _queue(self, message: Message, now: float, events: int) -> None:
        for channel in self._channels:
            if len(channel.waiting) >= self._policy.waiting_messages:
                dropped = channel.waiting.popleft()
                self.metrics.alert("dropped")
                log.warning("alert_dropped", alert="message", channel=channel.sender.channel,
                            subject=dropped.message.subject, why="too_many_waiting")
            channel.waiting.append(_Waiting(message, made=now, events=events, next_try=now))

    def _deliver(self, channel: _Channel) -> None:
        """Try the channel's messages in order while they go through."""
        while channel.waiting:
            head = channel.waiting[0]
            now = self._clock()
            if head.next_try > now:
                return
            head.attempts += 1
            try:
                channel.sender.send(head.message)
            except AlertDeliveryFailed as exc:
                now = self._clock()
                if not exc.retryable or now - head.made >= self._policy.give_up_seconds:
                    channel.waiting.popleft()
                    self._failed(channel, head, exc.message)
                    continue
                head.next_try = now + self._policy.retry_in(head.attempts, exc.retry_after,
                                                            self._rand())
                log.warning("alert_delivery_failed", channel=channel.sender.channel,
                            attempts=head.attempts, error=exc.message,
                            retry_in=round(head.next_try - now, 1))
                return
            except Exception as exc:  # a sender's bug must not end the loop  # noqa: BLE001
                channel.waiting.popleft()
                self._failed(channel, head, f"{exc.__class__.__name__} (a bug)")
                continue
            channel.waiting.popleft()
            self.metrics.alert("sent")
            log.info("alert_sent", channel=channel.sender.channel, subject=head.message.subject,
                     events=head.events, attempts=head.attempts)

    def _failed(self, channel: _Channel, waiting: _Waiting, error: str) -> None:
        self.metrics.alert("failed")
        log.error("alert_failed", channel=channel.sender.channel,
                  subject=waiting.message.subject, attempts=waiting.attempts, error=error)

    def _give_up_all(self) -> None:
        """Stopping: what is still waiting will not go out."""
        for channel in self._channels:
            while channel.waiting:
                self._left_undelivered += 1
                self._failed(channel, channel.waiting.popleft(),
                             "still undelivered when the daemon stopped")


def this_host() -> str:
    """The name messages give this machine."""
    return socket.gethostname()


def build_renderer(config_path: Path | None, host: str | None = None) -> Renderer:
    return Renderer(host or this_host(), Commands(config_path))
