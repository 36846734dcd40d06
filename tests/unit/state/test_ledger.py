"""The ledger: one durable line per upload, a torn tail recovered."""

from __future__ import annotations

import io
import json
from pathlib import Path

import structlog

from procore_hotfolder.logs import configure_logging
from procore_hotfolder.state.ledger import Ledger


def test_ledger_lines_and_torn_tail(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.append({"uuid": "U1", "source": "/d/a"})
    with ledger.path.open("ab") as f:  # a crash mid-write left half a line
        f.write(b'{"uuid": "U2", "sou')
    ledger.append({"uuid": "U3", "source": "/d/\udcff"})
    lines = ledger.path.read_bytes().splitlines()
    assert json.loads(lines[0])["uuid"] == "U1"
    assert json.loads(lines[-1])["uuid"] == "U3"
    assert json.loads(lines[-1])["source"] == "/d/\\xff"  # the odd byte, shown as \xff
    assert ledger.line_for("U1") == {"uuid": "U1", "source": "/d/a"}
    assert ledger.line_for("U3") is not None and ledger.line_for("U2") is None
    assert Ledger(tmp_path / "none-yet").line_for("U1") is None


def test_a_name_that_is_not_utf8_reads_the_same_in_the_log_as_in_the_ledger(
        tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("info", stream=out, json_output=True)
    structlog.get_logger("t").info("upload_completed", path=Path("/d/caf\udce9.pdf"),
                                   source="/d/caf\udce9.pdf")
    Ledger(tmp_path).append({"uuid": "U1", "source": "/d/caf\udce9.pdf"})
    line = json.loads(out.getvalue())
    ledger_line = json.loads(Ledger(tmp_path).path.read_text(encoding="utf-8"))
    assert line["path"] == line["source"] == ledger_line["source"] == "/d/caf\\xe9.pdf"
