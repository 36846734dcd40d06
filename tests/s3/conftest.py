"""One real S3 server (SeaweedFS) per test process, and an emulator that hands out its
storage targets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from procore_hotfolder.emulator import Emulator
from procore_hotfolder.emulator.s3 import S3Storage
from tests.conftest import CLIENT_ID, CLIENT_SECRET
from tests.s3.seaweedfs import SeaweedFS


@pytest.fixture(scope="session")
def s3_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Storage]:
    server = SeaweedFS(Path(tmp_path_factory.mktemp("seaweedfs")))
    storage = server.start()
    try:
        yield storage
    finally:
        server.stop()


@pytest.fixture
def s3_emulator(s3_storage: S3Storage) -> Iterator[Emulator]:
    """The emulator with SeaweedFS as its storage: policies and part URLs point there."""
    emu = Emulator(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, s3=s3_storage).start()
    try:
        yield emu
    finally:
        emu.stop()
