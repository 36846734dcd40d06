"""``[alerts]``: who is told when work needs a person, and when (product.md, Configuration:
Alerts). Read like the rest of the configuration: every problem named by its key
(``alerts.webhook_url``), all reported at once; a webhook URL's path (its secret) and the SMTP
password appear in no problem and no ``repr``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procore_hotfolder.config.values import (
    Problems,
    email_address,
    is_loopback,
    positive_int,
    positive_number,
    secret_file,
    string_list,
    typed,
    url,
)

ALERT_KEYS = {
    "webhook_url", "email_to", "email_from", "smtp_host", "smtp_port", "smtp_starttls",
    "smtp_user", "smtp_password_file", "command", "paused_minutes", "oldest_waiting_minutes",
    "batch_seconds",
}

@dataclass(frozen=True)
class AlertSettings:
    """``[alerts]``: who is told when work needs a person, and when. At least one channel
    (``webhook_url``, ``email_to``, ``command``) is set."""

    #: POSTed JSON; its path usually is the secret (never logged, never in ``repr``).
    webhook_url: str | None = field(default=None, repr=False)
    email_to: tuple[str, ...] = ()
    email_from: str | None = None
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    #: argv (no shell), run with the webhook's JSON on standard input.
    command: tuple[str, ...] = ()
    paused_minutes: float = 15.0
    oldest_waiting_minutes: float = 120.0
    batch_seconds: float = 60.0



def read_alerts(
    table: Mapping[str, Any], base_dir: Path, environ: Mapping[str, str], problems: Problems,
) -> AlertSettings:
    """``[alerts]``: the channels (webhook, e-mail over SMTP, a command) and the thresholds."""
    p = "alerts."
    problems.unknown_keys(table, ALERT_KEYS, p)
    webhook = url(table, "webhook_url", "", problems, prefix=p) or None
    command = string_list(table, "command", p, problems)
    if "command" in table and not command and not any(x.startswith(p + "command")
                                                       for x in problems.items):
        problems.add(p + "command", 'must name a program, e.g. ["/usr/local/bin/page-it"]')
    email_to = string_list(table, "email_to", p, problems)
    email_to = tuple(a for a in email_to if email_address(a, p + "email_to", problems))
    if "email_to" in table and not email_to and not any(x.startswith(p + "email_to")
                                                         for x in problems.items):
        problems.add(p + "email_to", "must list at least one address")
    email_from = typed(table, "email_from", str, p, problems)
    if email_from is not None and not email_address(email_from, p + "email_from", problems):
        email_from = None
    smtp_keys = ("email_from", "smtp_host", "smtp_port", "smtp_starttls", "smtp_user",
                 "smtp_password_file")
    if "email_to" not in table:
        for key in smtp_keys:
            if key in table:
                problems.add(p + key, "is used only with email_to")
    elif "email_from" not in table:
        problems.add(p + "email_from",
                     'is required with email_to (e.g. "procore-hotfolder@scan01.example.com")')
    smtp_host = typed(table, "smtp_host", str, p, problems) or "localhost"
    if any(c.isspace() or c == "/" for c in smtp_host):
        problems.add(p + "smtp_host", f"must be a host name or address, got {smtp_host!r}")
    smtp_port = positive_int(table, "smtp_port", 25, p, problems, maximum=65535)
    starttls = typed(table, "smtp_starttls", bool, p, problems) or False
    smtp_user = typed(table, "smtp_user", str, p, problems) or None
    password = secret_file(table, "smtp_password_file", p, problems, base_dir=base_dir,
                           environ=environ)
    if smtp_user is not None and "smtp_password_file" not in table:
        problems.add(p + "smtp_password_file", "is required with smtp_user")
    if "smtp_password_file" in table and smtp_user is None:
        problems.add(p + "smtp_user", "is required with smtp_password_file")
    if smtp_user is not None and not starttls and not is_loopback(smtp_host):
        # A login without STARTTLS would send the password in clear across the network.
        problems.add(p + "smtp_starttls", "must be true to log in to a server that is not on "
                     "this machine (the password would cross the network in clear)")
    if not any(key in table for key in ("webhook_url", "email_to", "command")):
        problems.add("alerts", "names nobody to tell: set webhook_url, email_to or command")
    return AlertSettings(
        webhook_url=webhook, email_to=email_to, email_from=email_from, smtp_host=smtp_host,
        smtp_port=smtp_port, smtp_starttls=starttls, smtp_user=smtp_user,
        smtp_password=password, command=command,
        paused_minutes=positive_number(table, "paused_minutes", 15.0, p, problems,
                                       allow_zero=True),
        oldest_waiting_minutes=positive_number(table, "oldest_waiting_minutes", 120.0, p,
                                               problems),
        batch_seconds=positive_number(table, "batch_seconds", 60.0, p, problems,
                                      allow_zero=True),
    )
