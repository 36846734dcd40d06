"""The interface the engine holds: ``build_alerts`` gives the delivery loop when the
configuration has ``[alerts]`` and the null one, which does nothing, when it has none."""

from __future__ import annotations

from pathlib import Path

from procore_hotfolder.alerts import NULL_ALERTS, Alerts, HeldFolder, build_alerts
from procore_hotfolder.config import parse_config


def _config(tmp_path: Path, **alerts: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "procore": {"company_id": 1, "client_id": "x"},
        "daemon": {"state_dir": str(tmp_path / "state")},
        "folders": [{"path": str(tmp_path / "drop"), "destination": "none"}]}
    if alerts:
        raw["alerts"] = alerts
    return raw


def test_without_alerts_the_engine_holds_the_null_one(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path), base_dir=tmp_path,
                          environ={"PROCORE_CLIENT_SECRET": "s"})
    alerts = build_alerts(config)
    assert alerts is NULL_ALERTS
    alerts.start()
    alerts.file_failed(0.0, tmp_path / "a.pdf", reason="validation", detail="x", attempts=1)
    alerts.holds(0.0, [HeldFolder(None, "authentication", "Unauthorized", 0.0)])
    alerts.backlog(0.0, tmp_path / "a.pdf", 1e9)
    assert alerts.close(1.0)


def test_with_alerts_it_is_the_delivery_loop(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path, command=["/bin/true"]), base_dir=tmp_path,
                          environ={"PROCORE_CLIENT_SECRET": "s"})
    alerts = build_alerts(config)
    assert isinstance(alerts, Alerts)
    alerts.start()
    assert alerts.close(5.0)
