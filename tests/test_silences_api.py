"""Silences and an integration's policies through the admin API, over real HTTP against the real bridge: create,
list, expire early (audited, live at once), bad input is a 422 that says what is wrong, viewers read only; and what
the silence does to the next webhook and, once expired, to the alert it withheld."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from tests.admin_harness import Console, running_console
from tests.harness import wait_for


@pytest.fixture
def console(database_url: str) -> Iterator[Console]:
    with running_console(database_url) as c:
        yield c


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_create_list_and_expire_a_silence(console: Console, db: psycopg.Connection) -> None:
    body = {
        "integration": "generic",
        "alias": "maint-*",
        "tags": ["db"],
        "details": {"env": "prod-*"},
        "duration": "2h",
        "comment": "database maintenance",
    }
    r = console.api("POST", "/silences", json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["state"], made["created_by"], made["managed_by"], made["tags"]) == (
        "active",
        "token:ci",
        "console",
        ["db"],
    )
    ends = datetime.fromisoformat(made["ends_at"]) - datetime.fromisoformat(made["starts_at"])
    assert ends == timedelta(hours=2)
    weekly = console.api(
        "POST",
        "/silences",
        json={"alias": "batch-*", "every": "sun 02:00-04:00", "timezone": "Europe/Berlin", "comment": "weekly"},
    )
    assert weekly.status_code == 201 and weekly.json()["window"] == "sun 02:00-04:00 Europe/Berlin"
    listed = console.api("GET", "/silences", token=console.viewer).json()["silences"]
    assert [s["id"] for s in listed] == [weekly.json()["id"], made["id"]]
    assert console.api("GET", f"/silences/{made['id']}").json()["comment"] == "database maintenance"

    r = console.api("POST", f"/silences/{made['id']}/expire", token=console.viewer)
    assert r.status_code == 403
    r = console.api("POST", f"/silences/{made['id']}/expire")
    assert r.status_code == 200 and r.json()["state"] == "expired" and r.json()["expired_by"] == "token:ci"
    assert console.api("POST", f"/silences/{made['id']}/expire").status_code == 200  # again: nothing changes
    assert [s["id"] for s in console.api("GET", "/silences").json()["silences"]] == [weekly.json()["id"]]
    assert len(console.api("GET", "/silences?all=1").json()["silences"]) == 2
    audit = db.execute(
        "SELECT actor, action, target FROM admin_audit WHERE action LIKE 'silence.%%' ORDER BY id"
    ).fetchall()
    assert audit == [
        ("token:ci", "silence.create", f"silence:{made['id']}"),
        ("token:ci", "silence.create", f"silence:{weekly.json()['id']}"),
        ("token:ci", "silence.expire", f"silence:{made['id']}"),
    ]
    assert console.api("POST", "/silences/999/expire").status_code == 404
    assert console.api("GET", "/silences/999").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"alias": "x", "duration": "1h"}, "'comment' is required"),
        ({"duration": "1h", "comment": "c"}, "this would silence everything"),
        ({"alias": "x", "comment": "c"}, "give 'ends_at' or 'duration'"),
        ({"alias": "x", "comment": "c", "duration": "soon"}, "'duration' must be a duration"),
        ({"alias": "x", "comment": "c", "ends_at": "2020-01-01T00:00:00Z"}, "must be after 'starts_at'"),
        (
            {"alias": "x", "comment": "c", "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2020-01-02T00:00:00Z"},
            "in the past",
        ),
        ({"alias": "x", "comment": "c", "ends_at": "2030-01-01T00:00:00"}, "needs a time zone"),
        ({"alias": "x", "comment": "c", "every": "someday 1-2"}, "must look like 'sun 02:00-04:00'"),
        ({"alias": "x", "comment": "c", "every": "sun 02:00-04:00", "timezone": "Nowhere/Land"}, "unknown time zone"),
        ({"integration": "Not A Name", "comment": "c", "duration": "1h"}, "must be an integration name"),
        ({"priorities": ["P9"], "comment": "c", "duration": "1h"}, "'priorities' must be among"),
        ({"alias": 7, "comment": "c", "duration": "1h"}, "'alias' must be a string"),
        ({"alias": "x", "comment": "c", "duration": "1h", "details": ["a"]}, "'details' must be an object"),
    ],
)
def test_bad_silences_are_422_with_the_reason(console: Console, body: dict[str, object], message: str) -> None:
    r = console.api("POST", "/silences", json=body)
    assert r.status_code == 422, r.text
    assert message in r.json()["message"]


def test_bad_json_and_no_token(console: Console) -> None:
    assert console.api("POST", "/silences", content=b"[1]").status_code == 400
    assert console.api("POST", "/silences", content=b"{nope").status_code == 400
    assert console.api("GET", "/silences", token=False).status_code == 401  # type: ignore[arg-type]


def test_a_silence_made_in_the_api_holds_the_next_create_and_expiring_it_sends_what_still_fires(
    database_url: str, db: psycopg.Connection
) -> None:
    with running_console(database_url) as console:
        r = console.api(
            "POST",
            "/silences",
            json={"integration": "generic", "alias": "nightly-*", "duration": "1h", "comment": "backup window"},
        )
        silence_id = r.json()["id"]

        def decision() -> str:
            body = {"action": "create", "alias": "nightly-backup", "message": "backup failed"}
            return str(console.webhook("generic", body).json()["events"][0]["decision"])

        wait_for(lambda: decision() == "suppress", what="the silence in this process")
        console.api("POST", f"/silences/{silence_id}/expire")
        # The sweeper (every 5 s by default) or the next firing sends it; here the next firing does.
        wait_for(lambda: decision() == "send", what="the silence to end")
        wait_for(lambda: console.emulator.state.list_alerts(), what="the alert")
    codes = [
        r[0] for r in db.execute("SELECT reason_code FROM alias_history WHERE alias = 'nightly-backup' ORDER BY id")
    ]
    assert codes[0] == "silenced" and "silence_over" in codes


def test_policies_of_a_console_integration(console: Console, db: psycopg.Connection) -> None:
    r = console.api(
        "POST",
        "/integrations",
        json={
            "name": "cron",
            "template": "generic",
            "base_url": console.emulator.base_url,
            "api_key": "test-genie-key",
        },
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert console.api("GET", "/integrations/cron/policies").json()["policies"] == {}
    bad = console.api("PUT", "/integrations/cron/policies", json={"close_delay": "soon", "expire_action": "shout"})
    assert bad.status_code == 422
    assert "close_delay: must be a duration" in bad.json()["message"] and "expire_action" in bad.json()["message"]
    r = console.api("PUT", "/integrations/cron/policies", json={"close_delay": "1m", "rate_per_minute": 600})
    assert r.status_code == 200 and r.json()["policies"] == {"close_delay": 60.0, "rate_per_minute": 600.0}
    assert console.api("GET", "/integrations/cron", token=console.viewer).json()["policies"]["close_delay"] == 60.0
    assert console.api("PUT", "/integrations/generic/policies", json={}).status_code == 409  # the file's
    assert console.api("PUT", "/integrations/nope/policies", json={}).status_code == 404
    # Live within a second: the next close is held.
    jobs = iter(range(100))

    def close_decision() -> str:
        alias = f"job-{next(jobs)}"
        console.webhook("cron", {"action": "create", "alias": alias, "message": "m"}, token=token)
        answer = console.webhook("cron", {"action": "close", "alias": alias}, token=token).json()
        return str(answer["events"][0]["decision"])

    wait_for(lambda: close_decision() == "delay", interval=0.2, what="the close delay")
    (audited,) = db.execute("SELECT after FROM admin_audit WHERE action = 'integration.policies'").fetchone()  # type: ignore[misc]
    assert audited == {"close_delay": 60.0, "rate_per_minute": 600.0}
    # The export takes them back into a config file.
    exported = console.api("GET", "/export/integrations.toml").text
    cron = exported[exported.index('name = "cron"') :]
    assert "rate_per_minute = 600.0" in cron and "[integrations.policies]\nclose_delay = 60.0" in cron
