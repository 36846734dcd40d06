"""Configuration: the example loads, every problem is reported at once naming its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from procore_hotfolder.config import AlertSettings, Current, load_config, parse_config
from procore_hotfolder.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def _minimal(tmp_path: Path, **procore: object) -> dict[str, object]:
    base: dict[str, object] = {
        "api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
        "company_id": 1, "client_id": "id",
    }
    base.update(procore)
    return {"procore": base, "daemon": {"state_dir": str(tmp_path / "state")},
            "folders": [{"path": str(tmp_path / "drop"), "destination": "none"}]}


def test_example_config_loads() -> None:
    config = load_config(ROOT / "config" / "example.toml",
                         environ={"PROCORE_CLIENT_SECRET": "s3cret"})
    assert config.procore.company_id == 1234
    assert config.procore.client_secret == "s3cret"
    assert [f.destination for f in config.folders[:2]] == ["documents", "photos"]
    # Visible archive and failed folders: Samba hides dot files from the people who drop.
    assert config.folders[1].archive_dir == Path("/srv/drop/site-photos/Archive")
    assert all(f.failed_dir.name == "Failed" for f in config.folders)
    scans = config.folders[2]
    assert not scans.own_target and [r.destination for r in scans.rules] == ["documents"] * 2
    assert scans.rules[1].name is not None  # scanners reuse names: the example renames
    assert "s3cret" not in repr(config)


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    raw = {
        "procore": {"api_url": "http://api.example.com", "company_id": "x", "client_id": "id",
                    "colour": "blue"},
        "daemon": {"workers": 0, "settle_seconds": -1, "bogus": 1},
        "folders": [{"path": str(tmp_path), "destination": "photos", "watch": "sometimes"}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, environ={})
    text = "\n".join(caught.value.problems)
    for key in ("procore.api_url", "procore.company_id", "procore.colour",
                "procore.client_secret_file", "daemon.workers", "daemon.settle_seconds",
                "daemon.bogus", "folders[0].destination", "folders[0].watch"):
        assert key in text, key


def test_secret_lookup_order(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "secret").write_text("from-credentials\n")
    (tmp_path / "secret").write_text("beside-config\n")
    raw = _minimal(tmp_path, client_secret_file="secret")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert parse_config(raw, base_dir=tmp_path, environ=env).procore.client_secret == \
        "from-credentials"
    assert parse_config(raw, base_dir=tmp_path, environ={}).procore.client_secret == \
        "beside-config"
    env["PROCORE_CLIENT_SECRET"] = "from-env"
    assert parse_config(raw, base_dir=tmp_path, environ=env).procore.client_secret == "from-env"


def test_missing_secret_file_names_the_key(tmp_path: Path) -> None:
    raw = _minimal(tmp_path, client_secret_file="absent")
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, environ={})
    assert any(p.startswith("procore.client_secret_file") for p in caught.value.problems)


@pytest.mark.parametrize("url,ok", [
    ("http://127.0.0.1:8765", True), ("http://localhost", True), ("http://[::1]:1", True),
    ("https://api.procore.com", True), ("http://api.procore.com", False),
    ("ftp://x", False), ("http://10.0.0.1", False),
])
def test_http_only_for_loopback(tmp_path: Path, url: str, ok: bool) -> None:
    raw = _minimal(tmp_path, api_url=url)
    env = {"PROCORE_CLIENT_SECRET": "x"}
    if ok:
        assert parse_config(raw, base_dir=tmp_path, environ=env).procore.api_url == url
    else:
        with pytest.raises(ConfigError) as caught:
            parse_config(raw, base_dir=tmp_path, environ=env)
        assert any(p.startswith("procore.api_url") for p in caught.value.problems)


def test_folder_defaults_and_relative_paths(tmp_path: Path) -> None:
    raw = _minimal(tmp_path)
    raw["folders"] = [{"path": "drop", "archive_dir": "done", "settle_seconds": 30, "project_id": 5,
                       "destination": "documents"}]
    config = parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})
    folder = config.folders[0]
    assert folder.path == tmp_path / "drop"
    assert folder.archive_dir == tmp_path / "drop" / "done"
    assert folder.failed_dir == tmp_path / "drop" / ".failed"
    assert folder.settle_seconds == 30
    assert (folder.mirror_subfolders, folder.on_name_clash) == (True, "version")
    assert config.folder_for(tmp_path / "drop" / "a" / "b.pdf") is folder
    assert config.folder_for(tmp_path / "elsewhere.pdf") is None


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[procore\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "invalid TOML" in caught.value.problems[0]


def test_destination_has_no_default(tmp_path: Path) -> None:
    """Procore deletes an Upload filed nowhere within a week: each folder must say where its
    files go, and a missing destination names its key (exit 78 through the CLI)."""
    raw = _minimal(tmp_path)
    raw["folders"] = [{"path": "a", "destination": "none"}, {"path": "b"}]
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})
    assert [p for p in caught.value.problems if "destination" in p] == [
        'folders[1].destination: is required: "documents", "photos" or "none" (Procore '
        "deletes an Upload that is filed nowhere within 7 days), unless [[folders.rules]] "
        "route the folder's files"]


@pytest.mark.parametrize("folder,key", [
    ({"destination": "documents", "on_name_clash": "overwrite"}, "folders[0].on_name_clash"),
    ({"destination": "photos", "on_name_clash": "rename"}, "folders[0].on_name_clash"),
    ({"destination": "none", "mirror_subfolders": False}, "folders[0].mirror_subfolders"),
    ({"destination": "documents", "mirror_subfolders": "yes"}, "folders[0].mirror_subfolders"),
])
def test_documents_keys_are_checked(tmp_path: Path, folder: dict[str, object], key: str) -> None:
    raw = _minimal(tmp_path)
    raw["folders"] = [{"path": "drop", "project_id": 5, **folder}]
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})
    assert any(p.startswith(key) for p in caught.value.problems), caught.value.problems


def test_documents_keys_are_read(tmp_path: Path) -> None:
    raw = _minimal(tmp_path)
    raw["folders"] = [{"path": "drop", "project_id": 5, "destination": "documents",
                       "mirror_subfolders": False, "on_name_clash": "fail"}]
    folder = parse_config(raw, base_dir=tmp_path,
                          environ={"PROCORE_CLIENT_SECRET": "x"}).folders[0]
    assert (folder.mirror_subfolders, folder.on_name_clash) == (False, "fail")


def test_documents_without_project_file_in_company_documents_photos_need_one(
        tmp_path: Path) -> None:
    raw = _minimal(tmp_path)
    raw["folders"] = [{"path": "drop", "destination": "documents"}]
    folder = parse_config(raw, base_dir=tmp_path,
                          environ={"PROCORE_CLIENT_SECRET": "x"}).folders[0]
    assert (folder.destination, folder.project_id) == ("documents", None)
    raw["folders"] = [{"path": "drop", "destination": "photos"}]
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "x"})
    assert any(p.startswith("folders[0].destination") and "project_id" in p
               for p in caught.value.problems), caught.value.problems


# --- [alerts] -------------------------------------------------------------------------------


def _uncommented_alerts() -> str:
    """The example's ``[alerts]`` block with its settings uncommented."""
    text = (ROOT / "config" / "example.toml").read_text()
    block = text[text.index("# [alerts]"):]
    lines = [line[2:] for line in block.splitlines()
             if re.match(r"# (\[alerts\]|[a-z_]+ = )", line)]
    return text[:text.index("# [alerts]")] + "\n".join(lines) + "\n"


def test_example_alerts_load_when_uncommented(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(_uncommented_alerts())
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smtp-password").write_text("from-the-credential\n")
    config = load_config(config_file, environ={"PROCORE_CLIENT_SECRET": "s",
                                               "CREDENTIALS_DIRECTORY": str(creds)})
    alerts = config.alerts
    assert alerts == AlertSettings(
        webhook_url="https://hooks.example.com/T000/B000/XXXX", email_to=("it@example.com",),
        email_from="procore-hotfolder@scan01.example.com", smtp_host="mail.example.com",
        smtp_port=587, smtp_starttls=True, smtp_user="procore-hotfolder",
        smtp_password="from-the-credential",
        command=("/usr/local/bin/page-it", "--team", "it"), paused_minutes=15,
        oldest_waiting_minutes=120, batch_seconds=60)
    assert "XXXX" not in repr(config) and "from-the-credential" not in repr(config)


def test_no_alerts_section_no_alerts() -> None:
    config = load_config(ROOT / "config" / "example.toml",
                         environ={"PROCORE_CLIENT_SECRET": "s3cret"})
    assert config.alerts is None


def _with_alerts(tmp_path: Path, **alerts: object) -> dict[str, object]:
    raw = _minimal(tmp_path)
    raw["alerts"] = alerts
    return raw


def test_alert_defaults(tmp_path: Path) -> None:
    raw = _with_alerts(tmp_path, command=["/bin/true"])
    alerts = parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "s"}).alerts
    assert alerts == AlertSettings(command=("/bin/true",))
    assert (alerts.smtp_host, alerts.smtp_port, alerts.paused_minutes,
            alerts.oldest_waiting_minutes, alerts.batch_seconds) == ("localhost", 25, 15, 120, 60)


def test_every_alert_problem_at_once_each_naming_its_key(tmp_path: Path) -> None:
    raw = _with_alerts(tmp_path, webhook_url="http://hooks.example.com/T000/B000/s3cr3t",
                       email_to=["it@example.com", "not an address"], smtp_port=0,
                       smtp_user="alerts", smtp_host="mail.example.com", command=[],
                       paused_minutes="soon",
                       oldest_waiting_minutes=0, batch_seconds=-1, colour="red")
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, environ={"PROCORE_CLIENT_SECRET": "s"})
    problems = caught.value.problems
    for key in ("alerts.webhook_url", "alerts.email_to", "alerts.email_from",
                "alerts.smtp_port", "alerts.smtp_password_file", "alerts.smtp_starttls",
                "alerts.command", "alerts.paused_minutes", "alerts.oldest_waiting_minutes",
                "alerts.batch_seconds", "alerts.colour"):
        assert any(p.startswith(key + ":") for p in problems), key
    assert not any("s3cr3t" in p or "T000" in p for p in problems)  # the URL's path is secret


@pytest.mark.parametrize(("alerts", "key", "says"), [
    ({}, "alerts", "names nobody to tell"),
    ({"command": ["/bin/true"], "smtp_host": "mail.example.com"}, "alerts.smtp_host",
     "only with email_to"),
    ({"email_to": ["it@example.com"]}, "alerts.email_from", "is required with email_to"),
    ({"email_to": ["it@example.com"], "email_from": "Procore <p@x.example>"},
     "alerts.email_from", "e-mail address"),
    ({"email_to": []}, "alerts.email_to", "at least one"),
    ({"email_to": ["it@example.com"], "email_from": "p@x.example",
      "smtp_password_file": "pw"}, "alerts.smtp_user", "required with smtp_password_file"),
    ({"email_to": ["it@example.com"], "email_from": "p@x.example", "smtp_user": "u",
      "smtp_password_file": "pw", "smtp_host": "mail.example.com"}, "alerts.smtp_starttls",
     "in clear"),
    ({"email_to": ["it@example.com"], "email_from": "p@x.example", "smtp_user": "u",
      "smtp_password_file": "absent"}, "alerts.smtp_password_file", "file not found"),
    ({"webhook_url": "ftp://hooks.example.com/x"}, "alerts.webhook_url", "https://"),
    ({"command": "/usr/local/bin/page-it"}, "alerts.command", "a list"),
    ({"command": ["/bin/true", ""]}, "alerts.command", "non-empty strings"),
], ids=["no-channel", "smtp-without-email", "no-from", "display-name", "empty-to",
        "password-without-user", "login-in-clear", "password-file-missing", "not-http",
        "command-string", "command-empty-word"])
def test_alert_problems(tmp_path: Path, alerts: dict[str, object], key: str,
                        says: str) -> None:
    (tmp_path / "pw").write_text("secret\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(_with_alerts(tmp_path, **alerts), base_dir=tmp_path,
                     environ={"PROCORE_CLIENT_SECRET": "s"})
    assert [p for p in caught.value.problems if p.startswith(key + ":") and says in p], \
        caught.value.problems


def test_smtp_password_lookup_order_and_login_on_this_machine(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smtp-password").write_text("from-credentials\n")
    (tmp_path / "smtp-password").write_text("beside-config\n")
    raw = _with_alerts(tmp_path, email_to=["it@example.com"], email_from="p@x.example",
                       smtp_user="u", smtp_password_file="smtp-password")  # localhost, no TLS
    env = {"PROCORE_CLIENT_SECRET": "s", "CREDENTIALS_DIRECTORY": str(creds)}
    read = parse_config(raw, base_dir=tmp_path, environ=env).alerts
    assert read is not None and read.smtp_password == "from-credentials"
    del env["CREDENTIALS_DIRECTORY"]
    read = parse_config(raw, base_dir=tmp_path, environ=env).alerts
    assert read is not None and read.smtp_password == "beside-config"


@pytest.mark.parametrize(("url", "ok"), [
    ("https://hooks.slack.com/services/T0/B0/x", True), ("http://127.0.0.1:8080/hook", True),
    ("http://localhost/hook", True), ("http://hooks.example.com/x", False),
])
def test_webhook_https_only_but_loopback(tmp_path: Path, url: str, ok: bool) -> None:
    raw = _with_alerts(tmp_path, webhook_url=url)
    env = {"PROCORE_CLIENT_SECRET": "s"}
    if ok:
        alerts = parse_config(raw, base_dir=tmp_path, environ=env).alerts
        assert alerts is not None and alerts.webhook_url == url
    else:
        with pytest.raises(ConfigError, match=r"alerts\.webhook_url"):
            parse_config(raw, base_dir=tmp_path, environ=env)


def test_the_holder_answers_the_configuration_last_set(tmp_path: Path) -> None:
    """``Current``: what every reader of the running daemon asks; only the reload sets it."""
    secret = {"PROCORE_CLIENT_SECRET": "x"}
    first = parse_config(_minimal(tmp_path), base_dir=tmp_path, environ=secret)
    raw = _minimal(tmp_path)
    raw["daemon"] = {"state_dir": str(tmp_path / "state"), "workers": 9}
    second = parse_config(raw, base_dir=tmp_path, environ=secret)
    current = Current(first)
    assert current() is first
    current.set(second)
    assert current() is second and current().daemon.workers == 9
    assert first.folder_at(tmp_path / "drop") is first.folders[0]
    assert first.folder_at(tmp_path / "drop" / "sub") is None  # exact, unlike folder_for
