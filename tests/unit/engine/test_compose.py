"""The composition root hands each of the timing's values to the code that waits: none of
them is left to a module default (which would hold production's wait in a test, silently)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from procore_hotfolder.config import load_config
from procore_hotfolder.engine.compose import build_engine
from procore_hotfolder.engine.timing import TIMING_VARIABLE, Timing
from procore_hotfolder.errors import NetworkError
from procore_hotfolder.model import Backoff, Spacing
from procore_hotfolder.procore.retry import RetryPolicy
from tests.conftest import write_config


class Nowhere:
    """Where the configuration sends the client: a closed port on the loopback."""

    url = "http://127.0.0.1:9"


def test_each_value_reaches_the_code_that_waits(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    timing = Timing(requests=RetryPolicy(tries=2, base=0.01, cap=0.01, jitter=0.0),
                    file_backoff=Backoff(base=0.3, cap=3.0, jitter=0.1),
                    outage_spacing=Spacing(least=0.2, spread=0.4),
                    pause_checks=Backoff(base=7.0, cap=70.0, jitter=0.0), stall_seconds=3.0,
                    scan_window=7, progress_every=0.25, snapshot_every=0.125)
    monkeypatch.setenv(TIMING_VARIABLE, timing.to_json())
    drop = tmp_path / "drop"
    drop.mkdir()
    nowhere: Any = Nowhere()
    config = load_config(write_config(tmp_path, nowhere, [{"path": str(drop)}]), environ={})
    with capture_logs() as logs:
        engine = build_engine(config, once=False)
    try:
        # Seen at work where that takes no waiting: a request tried `tries` times, a pause's
        # first re-check after the pause checks' first delay.
        with pytest.raises(NetworkError) as failed:
            engine.client.ensure_token()
        assert len(failed.value.history) == 1  # two tries: one retried
        paused = engine.service.holds.pause("/drop", {"reason": "permission"}, now=0.0,
                                            rand=0.5, sent_at=0.0)
        assert paused.until == 7.0
        # The others as handed over: seeing them at work would take their waits.
        service: Any = engine.service
        uploader = service._uploader
        assert (uploader._backoff, uploader._outage) == (timing.file_backoff,
                                                         timing.outage_spacing)
        assert uploader._progress.log_every == 0.25
        assert service.heartbeat._stall_seconds == 3.0
        assert service.scanner.window == 7
        assert service._snapshot_every == 0.125
    finally:
        engine.close()
    (said,) = [e for e in logs if e["event"] == "test_timing"]
    assert said["variable"] == TIMING_VARIABLE and said["scan_window"] == 7


def test_production_timing_without_the_variable(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TIMING_VARIABLE)
    drop = tmp_path / "drop"
    drop.mkdir()
    nowhere: Any = Nowhere()
    config = load_config(write_config(tmp_path, nowhere, [{"path": str(drop)}]), environ={})
    with capture_logs() as logs:
        engine = build_engine(config, once=False)
    try:
        service: Any = engine.service
        assert service.heartbeat._stall_seconds == Timing().stall_seconds
        assert service.scanner.window == Timing().scan_window
        assert service._uploader._backoff == Timing().file_backoff
    finally:
        engine.close()
    assert not [e for e in logs if e["event"] == "test_timing"]
