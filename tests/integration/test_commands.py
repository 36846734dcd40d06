"""The other subcommands as a user runs them: check, status, explain, retry, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.emulator import Emulator
from tests.conftest import TEST_TIMING, cli_env, run_cli, use_timing, write_config


def test_config_error_exit_78_lists_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[procore]\napi_url = "http://example.com"\nsurprise = 1\n'
                   '[daemon]\nworkers = 0\n')
    result = run_cli("check", "--offline", "-c", str(bad))
    assert result.returncode == 78
    for key in ("procore.api_url", "procore.surprise", "procore.company_id",
                "daemon.workers", "folders"):
        assert key in result.stderr, key


def _events(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_a_folder_without_destination_is_exit_78_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"""
[procore]
api_url = "http://127.0.0.1:9"
login_url = "http://127.0.0.1:9"
company_id = 1
client_id = "id"
client_secret_file = "secret"
[daemon]
state_dir = "{tmp_path / 'state'}"
[[folders]]
path = "{tmp_path}"
""")
    (tmp_path / "secret").write_text("s\n")
    result = run_cli("check", "--offline", "-c", str(config))
    assert result.returncode == 78
    assert "folders[0].destination: is required" in result.stderr


def test_usage_error_exit_2() -> None:
    assert run_cli("frobnicate").returncode == 2
    assert run_cli("explain").returncode == 2


def test_check_online_and_offline(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 3}])
    offline = run_cli("check", "--offline", "-c", str(config))
    assert offline.returncode == 0, offline.stdout + offline.stderr
    online = run_cli("check", "-c", str(config))
    assert online.returncode == 0, online.stdout + online.stderr
    assert emulator.count(kind="token") >= 1

    missing = write_config(tmp_path, emulator, [{"path": str(tmp_path / "absent")}])
    result = run_cli("check", "--offline", "-c", str(missing))
    assert result.returncode == 1
    assert "folders[0].path" in result.stdout


def test_check_and_status_say_how_each_folders_writers_are_seen(tmp_path: Path,
                                                                emulator: Emulator) -> None:
    """With CAP_LEASE every file's writer is seen; without it (a process that may lease only
    its own files) `check` warns, names the folder and the fix, and `status` says the same."""
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_config(tmp_path, emulator, [{"path": str(drop), "watch": "poll"}])
    seen = run_cli("check", "--offline", "-c", str(config))
    assert seen.returncode == 0, seen.stdout + seen.stderr
    assert "writers seen: a read lease on every file" in seen.stdout
    assert "warning: writers" not in seen.stdout
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("dropping CAP_LEASE needs root and setpriv (util-linux)")
    no_caps = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    unseen = subprocess.run([*no_caps, sys.executable, "-m", "procore_hotfolder", "check",
                             "--offline", "-c", str(config)], capture_output=True, text=True,
                            env=cli_env(), check=False, stdin=subprocess.DEVNULL)
    assert unseen.returncode == 0, unseen.stdout + unseen.stderr  # a warning, no problem
    assert f"folders[0] {drop}: ok, with a warning" in unseen.stdout
    assert "files the service user owns" in unseen.stdout
    assert "CAP_LEASE" in unseen.stdout and "settle_seconds of quiet alone" in unseen.stdout
    status = subprocess.run([*no_caps, sys.executable, "-m", "procore_hotfolder", "status",
                             "--json", "-c", str(config)], capture_output=True, text=True,
                            env=cli_env(), check=False, stdin=subprocess.DEVNULL)
    (folder,) = json.loads(status.stdout)["folders"]
    assert folder["writers"]["lease"] == "owned" and "CAP_LEASE" in folder["writers"]["warning"]


def test_once_leaves_a_file_a_writer_holds_open_in_place_and_names_it(
        tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "copying.dwg").write_bytes(b"the first half of a drawing")
    (drop / "ready.pdf").write_bytes(b"ready")
    config = write_config(tmp_path, emulator, [{"path": str(drop)}])
    writer = os.open(drop / "copying.dwg", os.O_WRONLY | os.O_APPEND)  # a stalled copy
    try:
        result = run_cli("once", "-c", str(config))
    finally:
        os.close(writer)
    assert result.returncode == 0, result.stdout + result.stderr
    finished = once_finished(result.stdout)
    [left] = finished["left_in_place"]
    assert left["path"] == str(drop / "copying.dwg") and "held open by a writer" in left["reason"]
    assert finished["uploaded"] == 1
    assert "copying.dwg" in result.stderr and "held open by a writer" in result.stderr
    assert (drop / "copying.dwg").exists() and not (drop / ".archive" / "copying.dwg").exists()
    assert [r.response_filename for r in emulator.stored_uploads()] == ["ready.pdf"]


def test_check_reports_bad_credentials(tmp_path: Path, emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = write_config(tmp_path, emulator, [{"path": str(drop)}])
    (tmp_path / "client-secret").write_text("wrong\n")
    result = run_cli("check", "-c", str(config))
    assert result.returncode == 1
    assert "authentication" in result.stdout
    assert "wrong" not in result.stdout + result.stderr


def test_status_explain_and_retry_of_a_refused_file(tmp_path: Path,
                                                    emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    good = drop / "good.pdf"
    good.write_bytes(b"%PDF good")
    linked = drop / "linked.pdf"
    linked.write_bytes(b"%PDF twice linked")
    os.link(linked, tmp_path / "other-name.pdf")
    config = write_config(tmp_path, emulator, [{"path": str(drop), "project_id": 9}])

    once = run_cli("once", "-c", str(config))
    assert once.returncode == 1, once.stdout + once.stderr
    (refused,) = once_finished(once.stdout)["failed"]
    assert refused["path"] == str(linked)

    failed = drop / ".failed" / "linked.pdf"
    assert failed.exists()
    sidecar = json.loads((drop / ".failed" / "linked.pdf.error.json").read_text())
    assert sidecar["reason"] == "hard_links"
    assert {"reason", "detail", "attempts", "time"} <= set(sidecar)

    status = json.loads(run_cli("status", "--json", "-c", str(config)).stdout)
    (folder,) = status["folders"]
    assert folder["failed"] == 1 and folder["archived"] == 1
    assert folder["last_upload"]["source"] == str(good)
    # destination none: said plainly, Procore deletes unfiled Uploads after 7 days
    assert "deletes them after 7 days" in folder["warning"]
    assert "WARNING: destination is none" in run_cli("status", "-c", str(config)).stdout
    assert any(e["event"] == "destination_warning" and e["destination"] == "none"
               for e in _events(once.stdout))

    explained = run_cli("explain", str(good), "-c", str(config)).stdout
    assert "uploaded as" in explained
    assert "failed because hard_links" in run_cli("explain", str(failed), "-c",
                                                  str(config)).stdout
    assert "ignored" in run_cli("explain", str(drop / "x.tmp"), "-c", str(config)).stdout

    (tmp_path / "other-name.pdf").unlink()  # the operator fixes the cause
    retried = run_cli("retry", "-c", str(config))
    assert retried.returncode == 0
    assert linked.exists() and not failed.exists()
    again = run_cli("once", "-c", str(config))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (drop / ".archive" / "linked.pdf").read_bytes() == b"%PDF twice linked"


def test_once_leaves_an_empty_file_in_place_and_names_it(tmp_path: Path,
                                                         emulator: Emulator) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "being-scanned.pdf").write_bytes(b"")
    (drop / "ready.pdf").write_bytes(b"ready")
    config = write_config(tmp_path, emulator, [{"path": str(drop)}])
    result = run_cli("once", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    finished = once_finished(result.stdout)
    assert [e["path"] for e in finished["left_in_place"]] == [str(drop / "being-scanned.pdf")]
    assert finished["uploaded"] == 1 and finished["exit_code"] == 0
    assert "being-scanned.pdf" in result.stderr and "empty" in result.stderr
    assert (drop / "being-scanned.pdf").exists()
    assert (drop / ".archive" / "ready.pdf").exists()
    assert not (drop / ".failed").exists()


def test_once_under_an_outage_keeps_files_and_exits_1(
        tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each try waits out the emulator's Retry-After (1 s): two tries a request, not five.
    use_timing(monkeypatch, requests=replace(TEST_TIMING.requests, tries=2))
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "waiting.pdf").write_bytes(b"waiting")
    emulator.faults.outage = True
    config = write_config(tmp_path, emulator, [{"path": str(drop)}], max_attempts=1)
    result = run_cli("once", "-c", str(config))
    assert result.returncode == 1
    (waiting,) = once_finished(result.stdout)["not_uploaded"]
    assert waiting["path"] == str(drop / "waiting.pdf") and waiting["reason"]
    assert "not uploaded" in result.stderr and "waiting.pdf" in result.stderr
    assert (drop / "waiting.pdf").exists() and not (drop / ".failed").exists()
    emulator.faults.outage = False
    again = run_cli("once", "-c", str(config))
    assert again.returncode == 0, again.stdout + again.stderr
    assert (drop / ".archive" / "waiting.pdf").exists()


def once_finished(stdout: str) -> dict[str, Any]:
    """The ``once_finished`` event; every stdout line of `once` must be a JSON log event."""
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events[-1]["event"] == "once_finished"
    return dict(events[-1])


def test_demo_runs_the_daemon_as_run_does(tmp_path: Path) -> None:
    """`demo` takes the state lock and serves status, explain and reload like `run`: the
    commands it prints work while it runs."""
    env = cli_env()
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "procore_hotfolder", "demo",
                             "--settle-seconds", "0.3"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL,
                            text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None

        def read_until(text: str) -> str:
            while True:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                assert line, "demo ended early:\n" + "".join(lines)
                lines.append(line)
                if text in line:
                    return line

        status_cmd = read_until(" status -c ").split()
        explain_cmd = read_until(" explain -c ").split()
        read_until("upload_completed")
        config = status_cmd[status_cmd.index("-c") + 1]
        status = run_cli("status", "-c", config)
        assert "daemon: running" in status.stdout and "archived 1" in status.stdout
        explained = run_cli("explain", "-c", config, explain_cmd[-1])
        assert "uploaded as" in explained.stdout
        # Visible archive and failed folders: Samba hides dot files from the people who drop.
        assert "/drop/Archive/hello-procore.txt" in explained.stdout
        assert any("Failed: " in line and "/drop/Failed" in line for line in lines)
        proc.send_signal(signal.SIGHUP)
        read_until("configuration_reloaded")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
