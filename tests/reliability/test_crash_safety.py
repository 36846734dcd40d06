"""Kill the real daemon with SIGKILL at random moments and check nothing is lost or doubled.

Hundreds of files in three folders (one filing into Documents, mirroring its subfolders, one
into Photos, many photos sharing a name), the daemon killed again and again mid-scan,
mid-upload, mid-association and mid-archive, then left to finish. From the emulator's records
and the folders: every file's bytes stored under exactly one Upload, filed exactly once (each
mirrored folder created once), one ledger line each, every original archived, nothing left
behind. Then Photos alone against a List Images that honours neither ``sort`` nor
``filters[created_at]`` (Procore promises neither): after each lost answer the daemon must
still find the image it made, so each photo is filed exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procore_hotfolder.emulator import Emulator
from tests.conftest import COMPANY_ID, cli_env, stop_process, wait_for, write_config

pytestmark = pytest.mark.slow

FILES_PER_FOLDER = 150
KILLS = 30
PHOTOS = 60
PHOTO_KILLS = 8


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start the daemon and return once it said ``daemon_ready`` (its journal recovered)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "procore_hotfolder", "run", "-c", str(config)],
            stdout=out, stderr=subprocess.STDOUT, env=cli_env(), stdin=subprocess.DEVNULL)
    wait_for(lambda: b'"daemon_ready"' in log.read_bytes() or proc.poll() is not None,
             message="daemon_ready")
    assert proc.poll() is None, log.read_text()
    return proc


def test_sigkill_at_random_moments_loses_nothing_and_doubles_nothing(
        tmp_path: Path, emulator: Emulator) -> None:
    rng = random.Random(20261128)
    plain, docs, photos = tmp_path / "plain", tmp_path / "docs", tmp_path / "photos"
    expected: dict[str, tuple[Path, bytes]] = {}
    for folder in (plain, docs, photos):
        for i in range(FILES_PER_FOLDER):
            data = os.urandom(rng.randint(1, 200_000))
            name = f"IMG_{i % 40:04}.jpg" if folder == photos else f"file {i}.bin"
            path = folder / f"d{i % 7}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            expected[hashlib.sha256(data).hexdigest()] = (path, data)
    config = write_config(tmp_path, emulator, [
        {"path": str(plain), "project_id": 1},
        {"path": str(docs), "project_id": 2, "destination": "documents"},
        {"path": str(photos), "project_id": 3, "destination": "photos"},
    ], settle_seconds=0.2, workers=4)
    emulator.faults.delay_seconds = 0.04  # widen the windows the kills can land in
    log = tmp_path / "daemon.log"

    kills = 0
    for _ in range(KILLS):
        proc = _start(config, log)
        time.sleep(rng.uniform(0.0, 1.0))  # the kill moment itself is what is random here
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        remaining = sum(1 for p, _ in expected.values() if p.exists())
        print(f"kill {kills}: {remaining} originals not yet archived")
    emulator.faults.delay_seconds = 0.0
    proc = _start(config, log)
    try:
        wait_for(lambda: not any(p.exists() for p, _ in expected.values()), timeout=240,
                 message="every original archived")
        ledger_path = tmp_path / "state" / "uploads.jsonl"
        wait_for(lambda: ledger_path.exists()
                 and len(ledger_path.read_text().splitlines()) >= len(expected),
                 timeout=60, message="ledger complete")
    finally:
        code = stop_process(proc, timeout=60)
    assert code == 0

    # Stored: each file's bytes under exactly one Upload, byte-identical.
    by_sha: dict[str, set[str]] = {}
    for record in emulator.stored_uploads():
        by_sha.setdefault(record.stored_sha256, set()).add(record.uuid)
    duplicates = {sha: uuids for sha, uuids in by_sha.items() if len(uuids) > 1}
    lost = [str(p) for sha, (p, _) in expected.items() if sha not in by_sha]
    assert not duplicates, duplicates
    assert not lost, lost
    for sha, (path, data) in expected.items():
        (uuid,) = by_sha[sha]
        assert emulator.stored_path(uuid).read_bytes() == data
        folder = next(f for f in (plain, docs, photos) if f in path.parents)
        archived = folder / ".archive" / path.relative_to(folder)
        assert archived.read_bytes() == data, archived
        if folder != plain:
            assert emulator.associations(uuid) == 1, path
    # The mirrored folders: d0..d6 below the root, each created once.
    mirrored = sorted(f["name"] for f in emulator.folders
                      if f["project_id"] == 2 and not f.get("is_root"))
    assert mirrored == [f"d{i}" for i in range(7)], mirrored
    # One ledger line per file.
    ledger = [json.loads(line) for line in
              (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    shas = [entry["sha256"] for entry in ledger]
    assert sorted(shas) == sorted(expected), "ledger lines differ from files"
    # Each photo its own image (many share a name), as the ledger says.
    image_ids = sorted(e["destination"]["id"] for e in ledger
                       if e["destination"]["kind"] == "photos")
    assert image_ids == sorted(i["id"] for i in emulator.images if i["project_id"] == 3)
    # Nothing left behind: no stray files, nothing failed.
    leftovers = [p for folder in (plain, docs, photos) for p in folder.rglob("*")
                 if p.is_file() and ".archive" not in p.parts]
    assert not leftovers, leftovers
    reposts = sum(r.store_count for r in emulator.stored_uploads()) - len(expected)
    lookups = sum(1 for r in emulator.request_log if r.method == "GET"
                  and r.path.startswith(("/rest/v1.0/images", "/rest/v1.0/folders")))
    print(f"files={len(expected)} kills={kills} duplicates={len(duplicates)} lost={len(lost)} "
          f"same-Upload re-sends={reposts} filing lookups after a kill={lookups}")


def test_sigkill_while_filing_photos_files_each_once_when_listings_ignore_sort_and_dates(
        tmp_path: Path, emulator: Emulator) -> None:
    """Lost answers of Create Image, recovered from a List Images that answers every image of
    the album oldest first, many created in the same second: equal timestamps say nothing
    about order, so the daemon reads the listing to its end and finds its own image."""
    rng = random.Random(20261205)
    photos = tmp_path / "photos"
    expected: dict[str, Path] = {}
    for i in range(PHOTOS):
        data = os.urandom(rng.randint(1, 60_000))
        path = photos / f"d{i % 3}" / f"IMG_{i % 20:04}.jpg"  # names shared across folders
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[hashlib.sha256(data).hexdigest()] = path
    config = write_config(tmp_path, emulator, [
        {"path": str(photos), "project_id": 3, "destination": "photos", "photos_album_id": 5},
    ], settle_seconds=0.2, workers=4)
    emulator.faults.images_ignore_sort_and_dates = True
    # Spread the work over the kills; a kill while a Create Image waits here loses the
    # answer of an image the emulator then creates.
    emulator.faults.delay_seconds = 0.25
    log = tmp_path / "daemon.log"
    for kill in range(PHOTO_KILLS):
        proc = _start(config, log)
        time.sleep(rng.uniform(0.2, 1.2))  # the kill moment itself is what is random here
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        print(f"kill {kill + 1}: {sum(1 for p in expected.values() if p.exists())} photos "
              "not yet archived")
    emulator.faults.delay_seconds = 0.0
    proc = _start(config, log)
    try:
        wait_for(lambda: not any(p.exists() for p in expected.values()), timeout=120,
                 message="every photo archived")
    finally:
        code = stop_process(proc, timeout=60)
    assert code == 0

    by_sha: dict[str, set[str]] = {}
    for record in emulator.stored_uploads():
        by_sha.setdefault(record.stored_sha256 or "", set()).add(record.uuid)
    assert sorted(by_sha) == sorted(expected)
    filed = {sha: sum(emulator.associations(uuid) for uuid in uuids)
             for sha, uuids in by_sha.items()}
    doubled = {str(expected[sha]): n for sha, n in filed.items() if n != 1}
    assert not doubled, f"photos not filed exactly once: {doubled}"
    images = [i for i in emulator.images if i["project_id"] == 3]
    assert len(images) == PHOTOS
    ledger = [json.loads(line) for line in
              (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    assert sorted(e["destination"]["id"] for e in ledger) == sorted(i["id"] for i in images)
    lookups = sum(1 for r in emulator.request_log
                  if r.method == "GET" and r.path.startswith("/rest/v1.0/images"))
    print(f"photos={PHOTOS} kills={PHOTO_KILLS} List Images calls (the looks after lost "
          f"answers, one page each)={lookups}")


ROUTED = 80
ROUTED_KILLS = 10


def test_sigkill_while_routing_files_each_once_where_its_rules_said(
        tmp_path: Path, emulator: Emulator) -> None:
    """Routed files (drawings to the project their number names and "03 Drawings/<disc>",
    photos to an album by name), the daemon killed again and again, its rules changed after
    the first kills (a drawing already uploaded keeps going where its Upload is), then left
    to finish: each file stored and filed once, each folder and album made once, one ledger
    line each, every file in the project of the rules in force when its Upload was made."""
    rng = random.Random(20261206)
    emulator.auto_create = False
    tower = emulator.create_project(COMPANY_ID, "Tower A", "24017")
    depot = emulator.create_project(COMPANY_ID, "Depot", "0042")
    scans = tmp_path / "scans"
    expected: dict[str, Path] = {}
    for i in range(ROUTED):
        data = os.urandom(rng.randint(1, 100_000))
        name = (f"{('24017', '0042')[i % 2]}-{'ASME'[i // 2 % 4]}-{i:03d}.pdf" if i % 4
                else f"site/Level {i % 3}/IMG_{i:04}.jpg")
        path = scans / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[hashlib.sha256(data).hexdigest()] = path
    photos = {"match": r"site/(?P<album>[^/]+)/[^/]+\.jpg", "project_id": tower,
              "destination": "photos", "photos_album": "{album}"}
    drawings = {"match": r"(?P<job>\d+)-(?P<disc>[A-Z])-\d+\.pdf", "project_number": "{job}",
                "destination": "documents", "documents_path": "03 Drawings/{disc}"}

    def configure(rules: list[dict[str, object]]) -> Path:
        return write_config(tmp_path, emulator, [{"path": str(scans), "destination": None,
                                                  "rules": rules}],
                            settle_seconds=0.2, workers=4)

    config = configure([photos, drawings])
    emulator.faults.delay_seconds = 0.05
    log = tmp_path / "daemon.log"
    for kill in range(ROUTED_KILLS):
        if kill == ROUTED_KILLS // 2:
            # From now on the rules send every drawing to the Depot's "Later" folder.
            config = configure([photos, {**drawings, "project_number": "0042",
                                         "documents_path": "Later"}])
        proc = _start(config, log)
        time.sleep(rng.uniform(0.0, 1.0))  # the kill moment itself is what is random here
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    emulator.faults.delay_seconds = 0.0
    proc = _start(config, log)
    try:
        wait_for(lambda: not any(p.exists() for p in expected.values()), timeout=120,
                 message="every file archived")
    finally:
        code = stop_process(proc, timeout=60)
    assert code == 0

    uploads = {r.stored_sha256: r for r in emulator.stored_uploads()}
    assert len(uploads) == len(emulator.stored_uploads()) == ROUTED  # each stored once
    assert sorted(uploads) == sorted(expected)
    assert all(emulator.associations(r.uuid) == 1 for r in uploads.values())
    # Each file filed in the project its Upload was made in, where the rules of that moment
    # said: "03 Drawings/<disc>" of its job's project, or the Depot's "Later".
    documents = {d["upload_uuids"][0]: d for d in emulator.documents}
    folders = {f["id"]: f for f in emulator.folders}
    for sha, path in expected.items():
        record = uploads[sha]
        if path.suffix == ".jpg":
            [image] = [i for i in emulator.images if i["upload_uuid"] == record.uuid]
            assert (image["project_id"], image["image_category_name"]) == (
                tower, path.parent.name)
            continue
        document = documents[record.uuid]
        folder = folders[document["parent_id"]]
        assert document["project_id"] == record.project_id
        if folder["name"] == "Later":
            assert record.project_id == depot
        else:
            job = path.name.split("-")[0]
            assert record.project_id == {"24017": tower, "0042": depot}[job]
            assert folder["name"] == path.name.split("-")[1]
            assert folders[folder["parent_id"]]["name"] == "03 Drawings"
    made = [(f["project_id"], f["parent_id"], f["name"]) for f in emulator.folders]
    assert len(made) == len(set(made)), "a folder made twice"
    with emulator.lock:
        albums = [(a.project_id, a.name) for a in emulator.state.albums.values()]
    assert sorted(albums) == [(tower, f"Level {n}") for n in range(3)]
    ledger = [json.loads(line) for line in
              (tmp_path / "state" / "uploads.jsonl").read_text().splitlines()]
    assert sorted(e["sha256"] for e in ledger) == sorted(expected)
    later = sum(1 for d in documents.values() if folders[d["parent_id"]]["name"] == "Later")
    print(f"routed files={ROUTED} kills={ROUTED_KILLS} drawings filed by the changed rules="
          f"{later}")
