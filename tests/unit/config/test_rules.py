"""Routing rules in the configuration: each problem named ``folders[N].rules[M].key``, all at
once; what a folder of rules only may leave out; templates read and rendered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from procore_hotfolder.config import Config, Template, parse_config
from procore_hotfolder.errors import ConfigError

ENV = {"PROCORE_CLIENT_SECRET": "x"}
GOOD = {"match": r"(?P<job>\d+)-(?P<disc>[A-Z])\.pdf", "project_number": "{job}",
        "destination": "documents", "documents_path": "03 Drawings/{disc}"}


def config(tmp_path: Path, *folders: dict[str, Any]) -> Config:
    raw = {"procore": {"api_url": "http://127.0.0.1:9", "login_url": "http://127.0.0.1:9",
                       "company_id": 1, "client_id": "id"},
           "daemon": {"state_dir": str(tmp_path / "state")},
           "folders": [{"path": str(tmp_path / f"drop{i}"), **f} for i, f in enumerate(folders)]}
    return parse_config(raw, base_dir=tmp_path, environ=ENV)


def problems(tmp_path: Path, *folders: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, *folders)
    return caught.value.problems


def test_a_folder_of_rules_only(tmp_path: Path) -> None:
    folder = config(tmp_path, {"rules": [GOOD, {"match": "x", "project_id": 9,
                                                 "destination": "none"}]}).folders[0]
    assert not folder.own_target and not folder.unfiled
    assert [r.index for r in folder.rules] == [0, 1]
    first = folder.rules[0]
    assert first.groups == ("job", "disc")
    assert (first.project_number, first.documents_path) == (Template("{job}", ("job",)),
                                                            Template("03 Drawings/{disc}",
                                                                     ("disc",)))
    assert first.on_name_clash == "version"


def test_rules_beside_the_folders_own_keys_inherit_its_project_and_clash_policy(
        tmp_path: Path) -> None:
    folder = config(tmp_path, {"project_id": 5, "destination": "documents",
                               "on_name_clash": "rename",
                               "rules": [{"match": ".*", "destination": "documents"},
                                         {"match": ".*", "destination": "documents",
                                          "project_id": 6, "on_name_clash": "fail"},
                                         {"match": r"(?P<n>.*)", "destination": "documents",
                                          "project_number": "{n}"}]}).folders[0]
    assert folder.own_target and not folder.unfiled
    assert [(r.project_id, r.on_name_clash) for r in folder.rules] == [
        (5, "rename"), (6, "fail"), (None, "rename")]
    clash_for_rules = config(tmp_path, {"on_name_clash": "fail",
                                        "rules": [GOOD]}).folders[0]
    assert clash_for_rules.rules[0].on_name_clash == "fail"  # a rules-only folder's default
    assert config(tmp_path, {"destination": "none"}).folders[0].unfiled


def test_a_folder_with_neither_destination_nor_rules_names_the_key(tmp_path: Path) -> None:
    assert problems(tmp_path, {"project_id": 5}) == [
        'folders[0].destination: is required: "documents", "photos" or "none" (Procore '
        "deletes an Upload that is filed nowhere within 7 days), unless [[folders.rules]] "
        "route the folder's files"]


#: A broken rule, and the key of ``folders[0].rules[0]`` each problem must name.
BROKEN: list[tuple[dict[str, Any], list[str]]] = [
    ({"destination": "documents"}, ["match"]),
    ({"match": "(unclosed", "destination": "documents"}, ["match"]),
    ({"match": "", "destination": "documents"}, ["match"]),
    ({"match": r"(?P<name>.*)", "destination": "documents"}, ["match"]),
    ({"match": ".*"}, ["destination"]),
    ({"match": ".*", "destination": "drawings"}, ["destination"]),
    ({"match": ".*", "destination": "documents", "colour": "blue"}, ["colour"]),
    ({"match": r"(?P<job>\d+)", "destination": "documents", "project_number": "{jobb}"},
     ["project_number"]),
    ({"match": r"(?P<job>\d+)", "destination": "documents", "project_number": "{job}",
      "project_id": 5}, ["project_id"]),
    ({"match": ".*", "destination": "documents", "project_number": "  "},
     ["project_number"]),
    ({"match": ".*", "destination": "documents", "project_id": 0}, ["project_id"]),
    ({"match": ".*", "destination": "documents", "documents_path": "a",
      "documents_folder_id": 4}, ["documents_folder_id"]),
    ({"match": ".*", "destination": "photos", "project_id": 1, "documents_path": "a"},
     ["documents_path"]),
    ({"match": ".*", "destination": "photos", "project_id": 1, "on_name_clash": "rename"},
     ["on_name_clash"]),
    ({"match": ".*", "destination": "documents", "photos_album": "x"}, ["photos_album"]),
    ({"match": ".*", "destination": "none", "photos_album_id": 3}, ["photos_album_id"]),
    ({"match": ".*", "destination": "photos", "project_id": 1, "photos_album": "a",
      "photos_album_id": 3}, ["photos_album_id"]),
    ({"match": ".*", "destination": "photos"}, ["destination"]),  # no project anywhere
    ({"match": ".*", "destination": "none", "description": "x"}, ["description"]),
    ({"match": ".*", "destination": "documents", "name": "{}"}, ["name"]),
    ({"match": ".*", "destination": "documents", "name": "{stem.upper}"}, ["name"]),
    ({"match": ".*", "destination": "documents", "name": "{stem!r}"}, ["name"]),
    ({"match": ".*", "destination": "documents", "name": "{stem:d}"}, ["name"]),
    ({"match": ".*", "destination": "documents", "name": "{stem:{ext}}"}, ["name"]),
    ({"match": ".*", "destination": "documents", "name": "{stem"}, ["name"]),
    ({"match": ".*", "destination": "documents", "description": 5}, ["description"]),
    ({"match": ".*", "destination": "documents", "on_name_clash": "overwrite"},
     ["on_name_clash"]),
]


@pytest.mark.parametrize(("rule", "keys"), BROKEN)
def test_each_problem_names_its_key(tmp_path: Path, rule: dict[str, Any],
                                    keys: list[str]) -> None:
    found = problems(tmp_path, {"rules": [rule]})
    assert [p.split(":")[0] for p in found] == [f"folders[0].rules[0].{k}" for k in keys]


def test_every_problem_of_every_rule_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path,
                     {"destination": "documents", "rules": [GOOD, *(r for r, _ in BROKEN)]},
                     {"rules": [{"match": ".*", "destination": "photos"}]},
                     {"rules": []}, {"rules": ["not a table"]})
    keys = [p.split(":")[0] for p in found]
    expected = [f"folders[0].rules[{i + 1}].{k}" for i, (_, ks) in enumerate(BROKEN)
                for k in ks]
    assert sorted(k for k in keys if k.startswith("folders[0]")) == sorted(expected)
    assert "folders[1].rules[0].destination" in keys
    assert "folders[2].rules" in keys and "folders[3].rules[0]" in keys


def test_unknown_field_says_which_fields_there_are(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, {"rules": [{**GOOD, "name": "{job}-{sheet}.pdf"}]})
    assert problem == (
        "folders[0].rules[0].name: unknown field(s) {sheet}: a template takes the "
        "expression's groups (job, disc) and {name}, {stem}, {ext}, {parent}, {date}, {time}")


def test_keys_of_the_folders_own_target_need_its_destination(tmp_path: Path) -> None:
    found = problems(tmp_path, {"rules": [GOOD], "documents_folder_id": 4,
                                "mirror_subfolders": False})
    assert [p.split(":")[0] for p in found] == ["folders[0].documents_folder_id",
                                                "folders[0].mirror_subfolders"]


@pytest.mark.parametrize(("text", "values", "rendered"), [
    ("{a}-{b}", {"a": "1", "b": "2"}, "1-2"),
    ("{a}{missing}", {"a": "1"}, "1"),
    ("{a}", {"a": None}, ""),
    ("{a:0>4}", {"a": "7"}, "0007"),
    ("{{a}} {a}", {"a": "x"}, "{a} x"),
    ("plain", {}, "plain"),
])
def test_templates_render(text: str, values: dict[str, str | None], rendered: str) -> None:
    assert Template.parse(text).render(values) == rendered


def test_template_fields_in_order_once() -> None:
    assert Template.parse("{b}/{a}/{b}").fields == ("b", "a")
