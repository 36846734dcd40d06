"""Configuration: the example loads, every problem is reported at once naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from procore_hotfolder.config import Current, load_config, parse_config
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
    assert [f.destination for f in config.folders] == ["documents", "photos"]
    assert config.folders[1].archive_dir == Path("/srv/drop/site-photos/.archive")
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
        "deletes an Upload that is filed nowhere within 7 days)"]


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
