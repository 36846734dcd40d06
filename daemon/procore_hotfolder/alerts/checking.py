"""What ``check`` says about ``[alerts]``, and the test message an admin can ask it to send.

``check_alerts`` describes each channel (one line each, never a webhook's path or a password)
and lists its problems, each naming its key: offline, that the command exists and may be run
(the configuration itself was validated when it loaded); online too, that the SMTP server
answers EHLO (then STARTTLS and login, as configured) and that the webhook's host resolves.
Nothing is sent. ``send_test_alert`` sends one test message through every channel, at once
and once (no batching, no retry), and says how each went.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from procore_hotfolder.alerts.delivery import build_renderer
from procore_hotfolder.alerts.senders import senders_for
from procore_hotfolder.config import Config
from procore_hotfolder.errors import AlertDeliveryFailed

NO_ALERTS = ("alerts: none configured (an [alerts] section tells a person by webhook, e-mail "
             "or a command when a file fails or a folder stays paused)")


@dataclass
class AlertReport:
    """Lines for the operator, and problems (each naming its key): ``check`` fails on any."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_alerts(config: Config, *, online: bool,
                 tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
                 ) -> AlertReport:
    """The channels of ``config.alerts`` and their problems; sends nothing."""
    report = AlertReport()
    if config.alerts is None:
        report.lines.append(NO_ALERTS)
        return report
    for sender in senders_for(config.alerts, tls_context=tls_context):
        report.lines.append(f"alerts: {sender.describe()}")
        report.problems += sender.check(online=online)
    return report


def send_test_alert(config: Config, now: float, *,
                    tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context,
                    ) -> AlertReport:
    """One test message through every channel of ``config.alerts``."""
    report = AlertReport()
    if config.alerts is None:
        report.problems.append("alerts: --send-test-alert needs an [alerts] section")
        return report
    message = build_renderer(config.source).test(now, config.source)
    for sender in senders_for(config.alerts, tls_context=tls_context):
        try:
            sender.send(message)
        except AlertDeliveryFailed as exc:
            report.problems.append(f"alerts: the test message did not go out by "
                                   f"{sender.channel}: {exc.message}")
        else:
            report.lines.append(f"alerts: test message sent by {sender.channel}: "
                                f"{message.subject!r}")
    return report
