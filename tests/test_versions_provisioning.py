"""Templates are versions in Postgres: the config file's templates are imported as versions (author "config
file"), a console edit of a file-managed template stays until the FILE's template changes, `locked = true`
refuses edits, and a version that does not compile never becomes active."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from alertbridge.admin import templates
from alertbridge.admin.actor import Actor
from alertbridge.admin.errors import Conflict, Forbidden, Invalid
from alertbridge.db import Database
from alertbridge.main import build_bridge, sync_integrations
from tests.harness import make_config

ALICE = Actor("user", "alice", "admin")
VIEWER = Actor("user", "victor", "viewer")

GENERIC_V2 = '{"action": "create", "alias": "{{ payload.alias }}", "message": "v2 {{ payload.message }}"}'


def file_config(tmp_path: Path, source: str, *, extra: str = "") -> object:
    (tmp_path / "mine.j2").write_text(source)
    return make_config(
        "http://127.0.0.1:9",
        base_dir=tmp_path,
        integrations=(("mine", "mine.j2"), ("alertmanager", "alertmanager")),
        extra_integration=extra,
    )


def versions_of(db: psycopg.Connection, name: str) -> list[tuple[object, ...]]:
    return db.execute(
        "SELECT version, author, restored_from FROM template_versions WHERE integration = %s ORDER BY version",
        (name,),
    ).fetchall()


def active_source(db: psycopg.Connection, name: str) -> str:
    row = db.execute(
        "SELECT v.source FROM integrations i JOIN template_versions v ON v.id = i.active_version_id WHERE i.name = %s",
        (name,),
    ).fetchone()
    assert row is not None
    return str(row[0])


def counter(db: psycopg.Connection) -> int:
    return int(db.execute("SELECT counter FROM config_state").fetchone()[0])  # type: ignore[index]


@pytest.mark.anyio
async def test_file_templates_become_versions_and_the_file_wins_when_its_template_changes(
    database: Database, db: psycopg.Connection, tmp_path: Path
) -> None:
    v1 = '{"action": "create", "alias": "{{ payload.alias }}", "message": "v1"}'
    assert await sync_integrations(database, build_bridge(file_config(tmp_path, v1)))
    assert versions_of(db, "mine") == [(1, "config file", None)]
    assert versions_of(db, "alertmanager") == [(1, "config file", None)]  # built-in templates are versions too
    assert active_source(db, "mine") == v1
    start = counter(db)

    # The same file again: no new version, no change announced.
    assert not await sync_integrations(database, build_bridge(file_config(tmp_path, v1)))
    assert versions_of(db, "mine") == [(1, "config file", None)] and counter(db) == start

    # An admin edits the file-managed template: it is active, and "changed since the file was applied".
    await templates.save(database, ALICE, "mine", GENERIC_V2, "louder")
    assert active_source(db, "mine") == GENERIC_V2
    assert db.execute(
        "SELECT author, comment FROM template_versions WHERE integration = 'mine' AND version = 2"
    ).fetchone() == ("alice", "louder")
    changed = db.execute(
        "SELECT i.file_template_sha256 <> v.sha256 FROM integrations i JOIN template_versions v "
        "ON v.id = i.active_version_id WHERE i.name = 'mine'"
    ).fetchone()
    assert changed == (True,)

    # The unchanged file applied again (a restart, a SIGHUP): the console's edit stays.
    assert not await sync_integrations(database, build_bridge(file_config(tmp_path, v1)))
    assert active_source(db, "mine") == GENERIC_V2

    # The file's template itself changes: the file wins again, as a new version.
    v3 = v1.replace("v1", "v3 from git")
    assert await sync_integrations(database, build_bridge(file_config(tmp_path, v3)))
    assert versions_of(db, "mine") == [(1, "config file", None), (2, "alice", None), (3, "config file", None)]
    assert active_source(db, "mine") == v3
    assert counter(db) > start


@pytest.mark.anyio
async def test_locked_refuses_edits_and_restores(database: Database, db: psycopg.Connection, tmp_path: Path) -> None:
    await sync_integrations(database, build_bridge(file_config(tmp_path, GENERIC_V2, extra="locked = true")))
    with pytest.raises(Conflict, match="locked = true"):
        await templates.save(database, ALICE, "mine", GENERIC_V2, "nope")
    with pytest.raises(Conflict):
        await templates.restore(database, ALICE, "mine", 1)
    assert versions_of(db, "mine") == [(1, "config file", None)]
    assert db.execute("SELECT count(*) FROM admin_audit").fetchone() == (0,)


@pytest.mark.anyio
async def test_a_version_that_does_not_compile_is_refused_with_its_line(
    database: Database, db: psycopg.Connection, tmp_path: Path
) -> None:
    await sync_integrations(database, build_bridge(file_config(tmp_path, GENERIC_V2)))
    with pytest.raises(Invalid) as info:
        await templates.save(database, ALICE, "mine", '{"action": "create",\n {% if %}', "broken")
    assert info.value.extra["template_error"]["line"] == 2
    assert versions_of(db, "mine") == [(1, "config file", None)]
    assert active_source(db, "mine") == GENERIC_V2


@pytest.mark.anyio
async def test_viewer_cannot_save_and_restore_is_a_new_version(
    database: Database, db: psycopg.Connection, tmp_path: Path
) -> None:
    await sync_integrations(database, build_bridge(file_config(tmp_path, GENERIC_V2)))
    with pytest.raises(Forbidden):
        await templates.save(database, VIEWER, "mine", GENERIC_V2, "no")
    await templates.save(database, ALICE, "mine", GENERIC_V2.replace("v2", "v3"), "three")
    restored = await templates.restore(database, ALICE, "mine", 1)
    assert restored["version"] == 3 and restored["restored_from"] == 1
    assert active_source(db, "mine") == GENERIC_V2
    audit = db.execute("SELECT actor, action, target, before, after FROM admin_audit ORDER BY id").fetchall()
    assert [(a, act, t) for a, act, t, _, _ in audit] == [
        ("alice", "template.save", "integration:mine"),
        ("alice", "template.restore", "integration:mine"),
    ]
    assert audit[1][3]["version"] == 2 and audit[1][4]["version"] == 3 and audit[1][4]["restored_from"] == 1


def test_diff_marks_added_and_removed_lines() -> None:
    old = {"version": 1, "source": "a\nb\nc\n"}
    new = {"version": 2, "source": "a\nB\nc\n"}
    d = templates.diff(old, new)
    assert [(line["kind"], line["text"]) for line in d["lines"]] == [
        ("hunk", "@@ -1,3 +1,3 @@"),
        ("same", "a"),
        ("del", "b"),
        ("add", "B"),
        ("same", "c"),
    ]
    assert not d["identical"] and templates.diff(old, old)["identical"]
