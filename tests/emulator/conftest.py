"""Fixtures of the emulator tests: a fresh emulator on a free loopback port, and a client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from procore_hotfolder.emulator import Emulator

from .support import Client


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Client:
    return Client(emu)
