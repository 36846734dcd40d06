"""The journal's schema versions are frozen: version 1 is the text it was released with,
whatever the daemon's states are now (a new state reaches the index only by an upgrade)."""

from __future__ import annotations

import ast
import hashlib
import inspect
import sqlite3
from pathlib import Path

from procore_hotfolder.model import ACTIVE
from procore_hotfolder.state import schema

#: SHA-256 of version 1's statements, whitespace collapsed, as released (before versions
#: were kept). Never edit it: change the schema by a new entry in ``_UPGRADES``.
VERSION_1_SHA256 = "b8c7046226a8d1cb82ba121eed3db3cba4fcbd8ed8bbb2e41d7c051bf0fd4c27"
VERSION_1_ACTIVE = {"associated", "associating", "ledgered", "queued", "stored", "uploading"}


def _normalised(sql: str) -> str:
    return " ".join(sql.split()).replace("( ", "(")


def test_version_1_is_the_text_it_was_released_with() -> None:
    assert hashlib.sha256(_normalised(schema._SCHEMA_V1).encode()).hexdigest() == \
        VERSION_1_SHA256


def test_version_1_is_a_literal_that_reads_nothing_live() -> None:
    """Not an f-string over the states of now: adding a state must not change version 1."""
    tree = ast.parse(inspect.getsource(schema))
    [value] = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
               and any(isinstance(t, ast.Name) and t.id == "_SCHEMA_V1" for t in node.targets)]
    assert isinstance(value, ast.Constant) and isinstance(value.value, str)


def test_version_1_indexes_the_active_states_of_then(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "v1.sqlite3")
    db.executescript(schema._SCHEMA_V1)
    [sql] = db.execute("SELECT sql FROM sqlite_master WHERE name = 'one_active_row_per_path'"
                       ).fetchone()
    db.close()
    listed = sql[sql.index("IN (") + 4:sql.rindex(")")]
    assert {s.strip(" '\n") for s in listed.split(",")} == VERSION_1_ACTIVE
    # The states active now are the same set; when they differ, an upgrade changes the index.
    assert {s.value for s in ACTIVE} == VERSION_1_ACTIVE
