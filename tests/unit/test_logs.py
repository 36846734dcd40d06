"""The log: JSON lines, names shown as the ledger shows them, never a secret."""

from __future__ import annotations

import io
import json

import structlog

from procore_hotfolder.logs import configure_logging, scrub


def test_logs_are_json_and_never_carry_secrets() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out, json_output=True)
    log = structlog.get_logger("t")
    log.info("upload_created", uuid="U1", token="abc", detail="Bearer eyJsecret x",
             url="https://s3/x?X-Amz-Signature=deadbeef&a=1", fields={"policy": "p"})
    line = json.loads(out.getvalue())
    assert line["event"] == "upload_created" and line["level"] == "info"
    assert "timestamp" in line and line["uuid"] == "U1"
    text = out.getvalue()
    for secret in ("abc", "eyJsecret", "deadbeef"):
        assert secret not in text
    assert scrub("client_secret=hunter2&x=1") == "client_secret=[redacted]&x=1"
