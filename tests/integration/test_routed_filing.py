"""Files routed by their names, uploaded and filed against the emulator as `once` and `run`
run them: a mixed drop into the projects its numbers name (found on page 2 of List Projects,
a leading zero kept) and the paths its rules name; Documents paths and an album by name made
once under 4 workers, the album found again after a lost answer; unknown and ambiguous
numbers failed with their sidecar and routed by `retry` once Procore is put right; a rule
changed across a restart while a file is half filed; the API calls each routed file costs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.emulator import Emulator
from procore_hotfolder.model import FileState
from procore_hotfolder.state.journal import Journal
from tests.conftest import COMPANY_ID, run_cli, stop_process, wait_for, write_config
from tests.integration.test_routing import MTIME, Company, scanner_config, utc_env
from tests.lossy_proxy import LossyProxy

#: The drawings rule of the scanner folder (``test_routing.scanner_config``'s first).
DRAWINGS = {"match": r"(?P<job>\d{2,6})[-_](?P<disc>[A-Z])-?(?P<sheet>\d{3})[^/]*\.pdf",
            "project_number": "{job}", "destination": "documents",
            "documents_path": "03 Drawings/{disc}", "description": "Sheet {sheet}"}
PHOTOS = {"match": r"photos/(?P<album>[^/]+)/[^/]+\.jpg", "project_number": "24017",
          "destination": "photos", "photos_album": "{album}", "description": "{album}, {stem}"}


def _drop(root: Path, names: list[str]) -> None:
    for relative in names:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"%PDF-1.7 {relative}\n".encode() + os.urandom(64))
        os.utime(path, (MTIME, MTIME))


def _rules_config(tmp_path: Path, emulator: Emulator, rules: list[dict[str, Any]],
                  api_url: str | None = None, **daemon: Any) -> Path:
    config = write_config(tmp_path, emulator, [{
        "path": str(tmp_path / "scans"), "archive_dir": "Archive", "failed_dir": "Failed",
        "destination": None, "rules": rules}], **daemon)
    if api_url is not None:  # the API through a proxy; tokens and storage direct
        config.write_text(config.read_text().replace(f'api_url = "{emulator.url}"',
                                                     f'api_url = "{api_url}"'))
    return config


def _paths(emulator: Emulator) -> dict[int, str]:
    """Every Documents folder id -> "project id:path below its root" ("" for a root)."""
    folders = {f["id"]: f for f in emulator.folders}

    def below(folder_id: int) -> str:
        folder = folders[folder_id]
        if folder.get("is_root") or folder.get("parent_id") is None:
            return ""
        parent = below(folder["parent_id"])
        return f"{parent}/{folder['name']}" if parent else folder["name"]

    return {i: f"{f['project_id']}:{below(i)}" for i, f in folders.items()}


def _filed(emulator: Emulator) -> dict[str, tuple[str, str | None]]:
    """Each document's name -> ("project id:folder path", its description); each image's
    filename -> ("project id:album name", its description)."""
    paths = _paths(emulator)
    out: dict[str, tuple[str, str | None]] = {}
    for doc in emulator.documents:
        assert doc["name"] not in out, f"{doc['name']} filed twice"
        out[doc["name"]] = (paths[doc["parent_id"]], doc["description"])
    for image in emulator.images:
        assert image["filename"] not in out, f"{image['filename']} filed twice"
        out[image["filename"]] = (f"{image['project_id']}:{image['image_category_name']}",
                                  image["description"])
    return out


def _albums(emulator: Emulator, project: int, name: str) -> list[int]:
    with emulator.lock:
        return [a.id for a in emulator.state.albums.values()
                if a.project_id == project and a.name == name]


def _api(emulator: Emulator, since: int = 0) -> Counter[tuple[str, str]]:
    """API calls by method and endpoint (ids left out)."""
    calls: Counter[tuple[str, str]] = Counter()
    for r in emulator.request_log[since:]:
        if r.kind == "api":
            endpoint = "/".join("{id}" if part.isdigit() else part
                                for part in r.path.split("/"))
            calls[(r.method, endpoint)] += 1
    return calls


def _sidecar(tmp_path: Path, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        (tmp_path / "scans" / "Failed" / f"{name}.error.json").read_text())
    return result


def test_a_mixed_drop_goes_where_the_rules_say_at_two_calls_a_file(
        tmp_path: Path, emulator: Emulator) -> None:
    """`once` over the scanner folder of `route`'s sample: every project found on the second
    page of List Projects (0042 is not 42, nor the other company's 0042); each drawing in
    its project's "03 Drawings/<discipline>" (the existing "03 Drawings" found, the rest
    made), with its description; photos in albums by name (one there, one made); a scan
    renamed by its template; the files without a route in Failed with their sidecar."""
    company = Company(emulator)
    config = scanner_config(tmp_path, emulator, company)

    result = run_cli("once", "-c", str(config), env=utc_env())

    assert result.returncode == 1, result.stderr  # some have no route
    tower, depot, yard = (f"{p}:" for p in (company.tower, company.depot, company.yard))
    level3 = _albums(emulator, company.tower, "Level 3")
    assert len(level3) == 1
    assert _filed(emulator) == {
        "24017-A-101_rev3.pdf": (tower + "03 Drawings/A", "Sheet 101"),
        "0042-S-201.pdf": (depot + "03 Drawings/S", "Sheet 201"),
        "42-M-301.pdf": (yard + "03 Drawings/M", "Sheet 301"),
        "IMG_0001.jpg": (f"{company.tower}:Level 2", None),
        "IMG_0002.jpg": (f"{company.tower}:Level 3", None),
        "2026-03-01_140509_SCN_0001.pdf": (depot + "Scans/2026-03-01", None),
    }
    archive = tmp_path / "scans" / "Archive"
    assert sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*")
                  if p.is_file()) == sorted([
                      "24017-A-101_rev3.pdf", "0042-S-201.pdf", "42-M-301.pdf",
                      "photos/Level 2/IMG_0001.jpg", "photos/Level 3/IMG_0002.jpg",
                      "SCN_0001.pdf"])
    ambiguous = _sidecar(tmp_path, "31000-E-100.pdf")
    assert (ambiguous["reason"], ambiguous["project_number"], ambiguous["project_ids"]) == (
        "ambiguous_project_number", "31000", sorted(company.twins))
    for name, number in (("24018-A-100.pdf", "24018"), ("55555-A-100.pdf", "55555")):
        unknown = _sidecar(tmp_path, name)  # another company's; an inactive project's
        assert (unknown["reason"], unknown["project_number"]) == (
            "unknown_project_number", number)
    unmatched = _sidecar(tmp_path, "notes.txt")
    assert unmatched["reason"] == "no_rule_matched"
    assert [t["rule"] for t in unmatched["rules_tried"]] == [0, 1, 2]
    assert (tmp_path / "scans" / "Tower.0001.rvt").exists()  # a Revit backup: ignored
    # The calls: 2 a routed file (the Upload, the document or image), nothing for the
    # files without a route, and once per run or per new place: the project list (2
    # pages), each folder made (and "03 Drawings", there already, found by its listing),
    # each album looked for (and "Level 3" made).
    calls = _api(emulator)
    routed = 6
    assert calls[("POST", "/rest/v1.1/projects/{id}/uploads")] == routed
    assert calls[("POST", "/rest/v1.0/files")] + calls[("POST", "/rest/v1.0/images")] == routed
    assert calls[("GET", "/rest/v1.0/projects")] == 2
    # Made: Depot's and Yard's "03 Drawings", A, S, M, Scans, 2026-03-01; Tower's "03
    # Drawings" asked for too (422: taken), then found in its parent's listing.
    assert calls[("POST", "/rest/v1.0/folders")] == 8
    assert calls[("GET", "/rest/v1.0/folders")] == 1
    assert calls[("GET", "/rest/v1.0/image_categories")] == 2
    assert calls[("POST", "/rest/v1.0/image_categories")] == 1
    ledger = [json.loads(line) for line in
              (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    assert sorted((e["project_id"], e["rule"], e["destination"]["kind"]) for e in ledger) == \
        sorted([(company.tower, 0, "documents"), (company.depot, 0, "documents"),
                (company.yard, 0, "documents"), (company.tower, 1, "photos"),
                (company.tower, 1, "photos"), (company.depot, 2, "documents")])


def test_paths_and_an_album_are_made_once_under_four_workers(
        tmp_path: Path, emulator: Emulator) -> None:
    """40 drawings of two projects over four disciplines and 12 photos for an album that
    does not exist yet, all settled at once, 4 workers: each Procore folder and the album
    made exactly once, every file filed."""
    company = Company(emulator)
    discs = "ASME"
    drawings = [f"{job}-{discs[i // 2 % 4]}-{100 + i:03d}.pdf"
                for i, job in enumerate(["24017", "0042"] * 20)]
    photos = [f"photos/Level 3/IMG_{i:04d}.jpg" for i in range(12)]
    _drop(tmp_path / "scans", drawings + photos)
    config = _rules_config(tmp_path, emulator, [DRAWINGS, PHOTOS], workers=4)

    result = run_cli("once", "-c", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    folders = Counter(_paths(emulator).values())
    for project in (company.tower, company.depot):
        made = {path.split(":", 1)[1]: n for path, n in folders.items()
                if path.startswith(f"{project}:") and path != f"{project}:"}
        assert made == {"03 Drawings": 1, **{f"03 Drawings/{d}": 1 for d in discs}}
    assert len(_albums(emulator, company.tower, "Level 3")) == 1
    filed = _filed(emulator)
    assert len(filed) == len(drawings) + len(photos)
    assert [filed[f"IMG_{i:04d}.jpg"] for i in range(12)] == [
        (f"{company.tower}:Level 3", f"Level 3, IMG_{i:04d}") for i in range(12)]
    assert all(filed[name][0] == f"{company.tower if name.startswith('24017') else company.depot}"
               f":03 Drawings/{name.split('-')[1]}" for name in drawings)
    calls = _api(emulator)
    assert calls[("POST", "/rest/v1.0/image_categories")] == 1
    assert calls[("GET", "/rest/v1.0/projects")] == 2  # one reading for every worker


@pytest.fixture
def proxy(emulator: Emulator) -> Iterator[LossyProxy]:
    lossy = LossyProxy(emulator.url).start()
    try:
        yield lossy
    finally:
        lossy.stop()


def test_an_album_made_but_its_answer_lost_is_found_not_made_again(
        tmp_path: Path, emulator: Emulator, proxy: LossyProxy) -> None:
    company = Company(emulator)
    _drop(tmp_path / "scans", ["photos/Level 3/IMG_0001.jpg"])
    config = _rules_config(tmp_path, emulator, [PHOTOS], api_url=proxy.url)
    proxy.lose_answers(1, "POST", "/rest/v1.0/image_categories")

    result = run_cli("once", "-c", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert proxy.lost == [("POST", f"/rest/v1.0/image_categories?project_id={company.tower}")]
    [album] = _albums(emulator, company.tower, "Level 3")
    assert _filed(emulator)["IMG_0001.jpg"][0] == f"{company.tower}:Level 3"
    albums = [(r.method, r.path) for r in emulator.request_log
              if r.kind == "api" and "image" in r.path]
    assert albums == [("GET", "/rest/v1.0/image_categories"),  # not there
                      ("POST", "/rest/v1.0/image_categories"),  # made; the answer lost
                      ("GET", "/rest/v1.0/image_categories"),  # there: album found
                      ("POST", "/rest/v1.0/images")]
    # Found at once: the file was not put back to wait for another try.
    assert "upload_retry_scheduled" not in result.stdout
    assert album == _albums(emulator, company.tower, "Level 3")[0]


@contextmanager
def _daemon(config: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`run`, as systemd starts it, until the block ends (then SIGTERM)."""
    out = config.parent / "daemon.out"
    with out.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procore_hotfolder", "run", "-c", str(config)],
            stdout=sink, stderr=subprocess.STDOUT, env=utc_env(), stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: b'"daemon_ready"' in out.read_bytes() or proc.poll() is not None,
                 message="daemon_ready")
        assert proc.poll() is None, out.read_text()
        yield proc
    finally:
        if proc.poll() is None:
            assert stop_process(proc) == 0


def test_unknown_and_ambiguous_numbers_fail_and_retry_routes_them_once_procore_is_right(
        tmp_path: Path, emulator: Emulator) -> None:
    """Both fail with their sidecar, without reading the project list again (it was read a
    moment before); the operator creates the project and renumbers a twin, then runs
    `retry`: the running daemon reads the list afresh (once) and files both."""
    company = Company(emulator)
    scans = tmp_path / "scans"
    config = _rules_config(tmp_path, emulator, [DRAWINGS])
    failed = scans / "Failed"
    with _daemon(config):
        _drop(scans, ["24017-A-101.pdf", "24099-A-100.pdf", "31000-E-100.pdf"])
        wait_for(lambda: (failed / "24099-A-100.pdf.error.json").exists()
                 and (failed / "31000-E-100.pdf.error.json").exists()
                 and (scans / "Archive" / "24017-A-101.pdf").exists(), message="sorted")
        assert _sidecar(tmp_path, "24099-A-100.pdf")["project_number"] == "24099"
        assert _sidecar(tmp_path, "31000-E-100.pdf")["project_ids"] == sorted(company.twins)
        assert _api(emulator)[("GET", "/rest/v1.0/projects")] == 2  # read once (2 pages)

        new = emulator.create_project(COMPANY_ID, "Harbour", "24099")
        emulator.remove_project(COMPANY_ID, company.twins[1])
        retried = run_cli("retry", "-c", str(config))
        assert retried.returncode == 0, retried.stdout + retried.stderr

        wait_for(lambda: (scans / "Archive" / "24099-A-100.pdf").exists()
                 and (scans / "Archive" / "31000-E-100.pdf").exists(), message="retried")
    filed = _filed(emulator)
    assert filed["24099-A-100.pdf"][0] == f"{new}:03 Drawings/A"
    assert filed["31000-E-100.pdf"][0] == f"{company.twins[0]}:03 Drawings/E"
    assert _api(emulator)[("GET", "/rest/v1.0/projects")] == 4  # read again once, for both


def test_a_rule_changed_across_a_restart_does_not_move_a_half_filed_file(
        tmp_path: Path, emulator: Emulator) -> None:
    """The drawing is uploaded to Tower A, its filing refused for now (500s); the daemon
    stops; the rule now sends such drawings to the Depot; after the restart the drawing is
    filed where its Upload is (Tower A, 03 Drawings/A), and a new drawing goes where the new
    rule says."""
    company = Company(emulator)
    scans = tmp_path / "scans"
    config = _rules_config(tmp_path, emulator, [DRAWINGS])
    emulator.faults.fail_next(1000, status=500, kind="api", path_contains="/rest/v1.0/files")
    log = config.parent / "daemon.out"
    with _daemon(config):
        _drop(scans, ["24017-A-101.pdf"])
        wait_for(lambda: b'"upload_retry_scheduled"' in log.read_bytes(),
                 message="filing refused for now")
    journal = Journal.open(tmp_path / "state")
    try:
        [row] = journal.active()
    finally:
        journal.close()
    assert row.state in (FileState.STORED, FileState.ASSOCIATING)  # uploaded, not filed
    assert row.route is not None and row.route["project"]["id"] == company.tower
    emulator.faults.clear_scripted()
    _rules_config(tmp_path, emulator, [{
        "match": DRAWINGS["match"], "project_id": company.depot,
        "destination": "documents", "documents_path": "Elsewhere"}])

    with _daemon(config):
        _drop(scans, ["24017-S-201.pdf"])
        wait_for(lambda: (scans / "Archive" / "24017-A-101.pdf").exists()
                 and (scans / "Archive" / "24017-S-201.pdf").exists(), message="filed")

    filed = _filed(emulator)
    assert filed["24017-A-101.pdf"][0] == f"{company.tower}:03 Drawings/A"
    assert filed["24017-S-201.pdf"][0] == f"{company.depot}:Elsewhere"
    assert sorted(r.project_id for r in emulator.stored_uploads()) == sorted(
        [company.tower, company.depot])


def test_a_reload_that_changes_the_rules_does_not_move_a_half_filed_file(
        tmp_path: Path, emulator: Emulator) -> None:
    """The same with SIGHUP instead of a restart."""
    company = Company(emulator)
    scans = tmp_path / "scans"
    config = _rules_config(tmp_path, emulator, [DRAWINGS])
    emulator.faults.fail_next(1000, status=500, kind="api", path_contains="/rest/v1.0/files")
    log = config.parent / "daemon.out"
    with _daemon(config) as proc:
        _drop(scans, ["24017-A-101.pdf"])
        wait_for(lambda: b'"upload_retry_scheduled"' in log.read_bytes(),
                 message="filing refused for now")
        _rules_config(tmp_path, emulator, [{
            "match": DRAWINGS["match"], "project_id": company.depot,
            "destination": "documents", "documents_path": "Elsewhere"}])
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: b'"configuration_reloaded"' in log.read_bytes(), message="reloaded")
        emulator.faults.clear_scripted()
        wait_for((scans / "Archive" / "24017-A-101.pdf").exists, message="filed")
    assert _filed(emulator)["24017-A-101.pdf"][0] == f"{company.tower}:03 Drawings/A"
