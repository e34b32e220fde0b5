"""The admin API over real HTTP against the real bridge and Postgres: every route, with its 401/403/404/409/422
paths; previews write nothing; saves are live at once; replays are rows next to the failure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from alertbridge.config import parse_config
from tests.admin_harness import Console, running_console
from tests.harness import fixture_bytes, wait_for

LOUD = '{"action": "create", "alias": "{{ payload.alias }}", "message": "LOUD {{ payload.message }}"}'
BROKEN_AT_RUNTIME = '{"action": "create", "alias": "{{ payload.alias }}", "message": "{{ payload.missing.deeper }}"}'


@pytest.fixture
def console(database_url: str) -> Iterator[Console]:
    with running_console(database_url) as c:
        yield c


def row_counts(db: psycopg.Connection) -> dict[str, int]:
    tables = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
    return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # type: ignore[index]


# --- authentication ------------------------------------------------------------------------------------------


def test_tokens_are_required_viewers_read_only_and_unknown_routes_are_json(
    console: Console, db: psycopg.Connection
) -> None:
    r = console.api("GET", "/integrations", token=False)  # type: ignore[arg-type]
    assert r.status_code == 401 and r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    assert console.api("GET", "/integrations", token="abt_not-a-token").status_code == 401
    assert console.api("GET", "/integrations", token=console.viewer).status_code == 200
    r = console.api("PUT", "/integrations/generic/template", token=console.viewer, json={"source": LOUD})
    assert r.status_code == 403 and "viewer" in r.json()["message"]
    for method, path in [
        ("POST", "/integrations"),
        ("POST", "/integrations/generic/template/versions/1/restore"),
        ("POST", "/inbound/1/replay"),
        ("POST", "/dead-letters/discard"),
        ("POST", "/integrations/generic/disable"),
    ]:
        assert console.api(method, path, token=console.viewer, json={}).status_code == 403, path
    r = console.api("GET", "/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    # Tokens are stored hashed, with when they were last used; revoked tokens stop working.
    assert console.admin not in json.dumps(db.execute("SELECT * FROM admin_tokens").fetchall(), default=str)
    assert db.execute("SELECT role FROM admin_tokens WHERE last_used_at IS NOT NULL").fetchall() == [("viewer",)]
    db.execute("UPDATE admin_tokens SET revoked_at = now() WHERE role = 'viewer'")
    assert console.api("GET", "/integrations", token=console.viewer).status_code == 401


# --- integrations -----------------------------------------------------------------------------------------


def test_list_and_one_integration(console: Console) -> None:
    assert console.webhook("generic", {"action": "create", "alias": "x", "message": "m"}).status_code == 202
    listing = console.api("GET", "/integrations").json()["integrations"]
    assert [i["name"] for i in listing] == ["alertmanager", "generic", "pinned"]
    generic = next(i for i in listing if i["name"] == "generic")
    assert generic["managed_by"] == "file" and generic["webhook_path"] == "/webhooks/generic"
    assert generic["template"]["active_version"] == 1 and generic["template"]["author"] == "config file"
    assert generic["target"]["api_key"] == "in the config file"
    assert generic["last_24h"]["accepted"] == 1 and generic["last_24h"]["open_aliases"] == 1
    one = console.api("GET", "/integrations/pinned").json()
    assert one["locked"] is True and one["tokens_note"] == "1 token(s) in the config file"
    assert console.api("GET", "/integrations/nope").status_code == 404


def test_create_a_console_integration_rotate_its_token_and_disable_it(console: Console, db: psycopg.Connection) -> None:
    bad = console.api("POST", "/integrations", json={"name": "Bad Name", "base_url": console.emulator.base_url})
    assert bad.status_code == 422
    r = console.api(
        "POST",
        "/integrations",
        json={
            "name": "cron",
            "template": "generic",
            "base_url": console.emulator.base_url,
            "api_key": "test-genie-key",
            "default_priority": "p2",
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    first = created["token"]
    assert created["managed_by"] == "console" and created["target"]["api_key"] == "encrypted in Postgres"
    assert created["defaults"]["priority"] == "P2"
    assert console.api("POST", "/integrations", json={"name": "cron", "base_url": "http://x"}).status_code == 409
    # The key is encrypted, the token hashed: neither is anywhere in the database in clear.
    tables = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    dump = "\n".join(str(r[0]) for t in tables for r in db.execute(f'SELECT t::text FROM "{t}" t'))
    assert "test-genie-key" not in dump and first not in dump and console.admin not in dump

    # The new integration serves at once, and delivers with the decrypted key.
    r = console.webhook("cron", {"action": "create", "alias": "nightly", "message": "backup failed"}, token=first)
    assert r.status_code == 202, r.text
    wait_for(
        lambda: db.execute("SELECT status FROM outbox WHERE integration = 'cron'").fetchone() == ("delivered",),
        what="delivery",
    )

    # Rotation: the new token is shown once; the old one stays valid until removed.
    r = console.api("POST", "/integrations/cron/tokens", json={"label": "2027"})
    assert r.status_code == 201
    second = r.json()["token"]
    assert console.webhook("cron", {"action": "note", "alias": "nightly", "note": "a"}, token=first).status_code == 202
    assert console.webhook("cron", {"action": "note", "alias": "nightly", "note": "b"}, token=second).status_code == 202
    tokens = console.api("GET", "/integrations/cron").json()["tokens"]
    assert [t["label"] for t in tokens] == ["first token", "2027"]
    assert console.api("DELETE", f"/integrations/cron/tokens/{tokens[0]['id']}").status_code == 200
    assert console.webhook("cron", {"action": "note", "alias": "nightly", "note": "c"}, token=first).status_code == 401
    assert console.api("DELETE", f"/integrations/cron/tokens/{tokens[0]['id']}").status_code == 404

    assert console.api("POST", "/integrations/cron/disable").status_code == 200
    assert console.webhook("cron", {"action": "note", "alias": "nightly", "note": "d"}, token=second).status_code == 404
    assert console.api("POST", "/integrations/cron/enable").json() == {"enabled": True}
    assert console.webhook("cron", {"action": "note", "alias": "nightly", "note": "e"}, token=second).status_code == 202
    assert console.api("POST", "/integrations/nope/enable").status_code == 404
    # File-managed integrations are changed in the file.
    r = console.api("POST", "/integrations/generic/disable")
    assert r.status_code == 409 and "config file" in r.json()["message"]
    assert console.api("POST", "/integrations/generic/tokens", json={}).status_code == 409
    actions = [r[0] for r in db.execute("SELECT action FROM admin_audit ORDER BY id")]
    assert actions == [
        "token.create",
        "token.create",
        "integration.create",
        "integration.token.add",
        "integration.token.remove",
        "integration.disable",
        "integration.enable",
    ]


def test_an_api_key_is_refused_without_the_secret_key(database_url: str) -> None:
    with running_console(database_url, secret_key=None) as console:
        r = console.api(
            "POST", "/integrations", json={"name": "cron", "base_url": "http://127.0.0.1:9", "api_key": "k"}
        )
        assert r.status_code == 422 and "ALERTBRIDGE_SECRET_KEY" in r.json()["message"]
        assert console.api("GET", "/integrations/cron").status_code == 404


def test_target_update_and_export_round_trip(console: Console) -> None:
    r = console.api("POST", "/integrations", json={"name": "cron", "region": "eu", "default_team": "ops"})
    assert r.status_code == 201 and r.json()["target"]["api_key"] == "missing"
    r = console.api("PUT", "/integrations/cron/target", json={"api_key": "new-key", "default_source": "cron"})
    assert r.status_code == 200 and r.json()["target"]["api_key"] == "encrypted in Postgres"
    assert console.api("PUT", "/integrations/cron/target", json={}).status_code == 422
    assert console.api("PUT", "/integrations/alertmanager/target", json={"region": "us"}).status_code == 409
    text = console.api("GET", "/export/integrations.toml").text
    assert "new-key" not in text and "test-genie-key" not in text
    env = {n: "x" * 12 for n in ("ALERTMANAGER_TOKEN", "GENERIC_TOKEN", "PINNED_TOKEN", "CRON_TOKEN")}
    env |= {
        n: "k"
        for n in (
            "ALERTMANAGER_OPSGENIE_API_KEY",
            "GENERIC_OPSGENIE_API_KEY",
            "PINNED_OPSGENIE_API_KEY",
            "CRON_OPSGENIE_API_KEY",
        )
    }
    config = parse_config(text, env, source="export.toml")
    by_name = {i.name: i for i in config.integrations}
    assert by_name["cron"].target.region == "eu" and by_name["cron"].target.default_team == "ops"
    assert by_name["pinned"].locked and by_name["generic"].template == "templates/generic.j2"


# --- templates ----------------------------------------------------------------------------------------------


def test_get_put_and_the_next_webhook_uses_the_new_version(console: Console, db: psycopg.Connection) -> None:
    t = console.api("GET", "/integrations/generic/template").json()
    assert set(t) == {"version", "source", "sha256", "author", "comment", "created_at", "restored_from"}
    assert t["version"] == 1 and t["author"] == "config file"
    r = console.api("PUT", "/integrations/generic/template", json={"source": LOUD, "comment": "louder"})
    assert r.status_code == 201 and r.json()["version"] == 2
    r = console.webhook("generic", {"alias": "a", "message": "hi"})
    (message,) = db.execute(
        "SELECT payload->>'message' FROM outbox WHERE inbound_id = %s", (r.json()["id"],)
    ).fetchone()  # type: ignore[misc]
    assert message == "LOUD hi"  # this process reloaded before answering the PUT
    t = console.api("GET", "/integrations/generic/template").json()
    assert (t["version"], t["author"], t["comment"]) == (2, "token:ci", "louder")

    r = console.api("PUT", "/integrations/generic/template", json={"source": "{% if %}", "comment": "x"})
    assert r.status_code == 422
    assert r.json()["template_error"]["line"] == 1 and "compile" in r.json()["message"]
    assert console.api("PUT", "/integrations/generic/template", json={"comment": "no source"}).status_code == 422
    assert console.api("PUT", "/integrations/nope/template", json={"source": LOUD}).status_code == 404
    r = console.api("PUT", "/integrations/pinned/template", json={"source": LOUD})
    assert r.status_code == 409 and "locked = true" in r.json()["message"]
    r = console.api("PUT", "/integrations/generic/template", content=b"{not json")
    assert r.status_code == 400


def test_versions_diff_restore_and_source(console: Console) -> None:
    console.api("PUT", "/integrations/generic/template", json={"source": LOUD, "comment": "<b>louder</b>"})
    versions = console.api("GET", "/integrations/generic/template/versions").json()["versions"]
    assert [(v["version"], v["author"]) for v in versions] == [(2, "token:ci"), (1, "config file")]
    assert "source" not in versions[0]
    assert console.api("GET", "/integrations/generic/template/versions/2").json()["source"] == LOUD
    assert console.api("GET", "/integrations/generic/template/versions/9").status_code == 404
    d = console.api("GET", "/integrations/generic/template/diff?from=1&to=2").json()
    assert (
        d["from"] == 1 and d["to"] == 2 and any(line["kind"] == "add" and "LOUD" in line["text"] for line in d["lines"])
    )
    assert console.api("GET", "/integrations/generic/template/diff?from=1").status_code == 400
    assert console.api("GET", "/integrations/generic/template/diff?from=1&to=7").status_code == 404
    r = console.api("POST", "/integrations/generic/template/versions/1/restore", json={})
    assert r.status_code == 201 and r.json() == {"version": 3, "restored_from": 1}
    t = console.api("GET", "/integrations/generic/template").json()
    assert t["restored_from"] == 1 and t["comment"] == "restore version 1"
    assert console.api("POST", "/integrations/generic/template/versions/8/restore").status_code == 404
    r = console.api("GET", "/integrations/generic/template/versions/2/source")
    assert r.text == LOUD and "generic-v2.j2" in r.headers["content-disposition"]


def test_preview_shows_requests_decisions_and_limits_and_writes_nothing(
    console: Console, db: psycopg.Connection
) -> None:
    stored = console.webhook("alertmanager", fixture_bytes("alertmanager/01_firing_two_alerts.json")).json()["id"]
    wait_for(
        lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (2,), what="delivery"
    )
    long_message = (
        '{% for a in payload.alerts %}{"action": "create", "alias": "{{ a.fingerprint }}", '
        '"message": "{{ "x" * 200 }}"}{% if not loop.last %},{% endif %}{% endfor %}'
    )
    before = row_counts(db)
    r = console.api(
        "POST",
        "/integrations/alertmanager/template/preview",
        json={"source": "[" + long_message + "]", "inbound_id": stored},
    )
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["status"] == "processed" and p["error"] is None and p["template"] == "draft"
    first = p["events"][0]
    assert first["action"] == "create" and first["state"]["before"] == "open"  # against the current alias state
    assert first["request"]["method"] == "POST" and first["request"]["url"].endswith("/v2/alerts")
    assert len(first["request"]["json"]["message"]) == 130
    assert p["limits"][0] == {
        "seq": 0,
        "field": "message",
        "detail": "200 -> 130 characters",
        "before": 200,
        "after": 130,
        "removed": 70,
    }

    # The active template, a pasted payload: decisions against the current alias state (a new alias: send).
    r = console.api(
        "POST",
        "/integrations/generic/template/preview",
        json={"payload": {"action": "create", "alias": "new", "message": "m"}},
    )
    assert r.json()["events"][0]["decision"] == "send" and r.json()["template"] == "active"
    # Template errors come back with the line, as 200 with an error object.
    r = console.api("POST", "/integrations/generic/template/preview", json={"source": "{\n{% if %}", "payload": {}})
    assert r.status_code == 200 and r.json()["error"]["line"] == 2 and r.json()["events"] == []
    r = console.api(
        "POST", "/integrations/generic/template/preview", json={"source": BROKEN_AT_RUNTIME, "payload": {"alias": "a"}}
    )
    assert r.status_code == 200 and r.json()["status"] == "template_error" and r.json()["error"]["line"] == 1
    r = console.api("POST", "/integrations/generic/template/preview", json={"body": "{not json"})
    assert r.json()["status"] == "invalid"
    assert console.api("POST", "/integrations/generic/template/preview", json={"source": LOUD}).status_code == 422
    assert console.api("POST", "/integrations/generic/template/preview", json={"inbound_id": stored}).status_code == 404
    assert console.api("POST", "/integrations/nope/template/preview", json={"payload": {}}).status_code == 404
    assert row_counts(db) == before  # nothing was written, and nothing sent
    assert len([r for r in console.emulator.state.requests if r["method"] == "POST"]) == 2


def test_test_against_recent_traffic(console: Console, db: psycopg.Connection) -> None:
    for i in range(3):
        console.webhook("generic", {"action": "create", "alias": f"a{i}", "message": "short" if i else "x" * 150})
    console.webhook("generic", {"action": "create", "alias": "crash", "message": "m", "boom": True})
    wait_for(
        lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (4,), what="delivery"
    )
    draft = (
        "{% if payload.boom is defined %}{{ payload.nothing.here }}{% endif %}"
        '{"action": "create", "alias": "{{ payload.alias }}", "message": "{{ payload.message }}{{ "!" * 130 }}"}'
    )
    before = row_counts(db)
    r = console.api("POST", "/integrations/generic/template/test", json={"source": draft})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["total"] == 4 and report["changed"] == 4 and report["unchanged"] == 0
    assert report["now_failing_count"] == 1 and report["now_failing"][0]["error"]["kind"] == "undefined"
    # "x" * 150 was cut already; the two short messages now are.
    assert report["newly_truncated_count"] == 2 and report["newly_truncated"][0]["fields"] == ["event 0: message"]
    assert row_counts(db) == before
    r = console.api("POST", "/integrations/generic/template/test", json={"source": "{% if %}"})
    assert r.json()["error"]["kind"] == "syntax"


# --- replays and dead letters -------------------------------------------------------------------------------


def test_replay_a_failed_webhook_after_fixing_the_template(console: Console, db: psycopg.Connection) -> None:
    assert console.api("PUT", "/integrations/generic/template", json={"source": BROKEN_AT_RUNTIME}).status_code == 201
    r = console.webhook("generic", {"alias": "z", "message": "hello"})
    assert r.status_code == 422
    failed = r.json()["id"]
    assert console.api("POST", f"/inbound/{failed}/replay").json()["http_status"] == 422  # still broken
    fixed = console.api("PUT", "/integrations/generic/template", json={"source": LOUD, "comment": "fix"}).json()
    r = console.api("POST", f"/inbound/{failed}/replay")
    assert r.status_code == 200 and r.json()["http_status"] == 202 and r.json()["status"] == "accepted"
    one = console.api("GET", f"/inbound/{failed}").json()
    assert one["status"] == "template_error" and one["current_status"] == "processed"  # the failure stays
    assert [(x["status"], x["version"], x["actor"]) for x in one["replays"]] == [
        ("template_error", 2, "token:ci"),
        ("processed", fixed["version"], "token:ci"),
    ]
    wait_for(
        lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (1,), what="delivery"
    )
    r = console.api("POST", f"/inbound/{failed}/replay")
    assert r.status_code == 409 and "processed already" in r.json()["message"]
    assert console.api("POST", "/inbound/999999/replay").status_code == 404
    assert console.api("GET", "/inbound/999999").status_code == 404
    assert console.api("GET", "/inbound?integration=generic").json()["inbound"][0]["id"] == failed


def test_bulk_replay_of_failed_webhooks_since(console: Console) -> None:
    console.api("PUT", "/integrations/generic/template", json={"source": BROKEN_AT_RUNTIME})
    ids = [console.webhook("generic", {"alias": f"b{i}", "message": "m"}).json()["id"] for i in range(3)]
    console.api("PUT", "/integrations/generic/template", json={"source": LOUD})
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    r = console.api("POST", "/inbound/replay", json={"integration": "generic", "since": since})
    assert r.status_code == 200 and r.json()["replayed"] == 3 and r.json()["fixed"] == 3
    assert sorted(x["id"] for x in r.json()["results"]) == ids
    again = console.api("POST", "/inbound/replay", json={"integration": "generic", "since": since}).json()
    assert again["replayed"] == 0
    assert (
        console.api("POST", "/inbound/replay", json={"integration": "generic", "since": "yesterday"}).status_code == 422
    )
    assert console.api("POST", "/inbound/replay", json={"integration": "nope", "since": since}).status_code == 404


def test_dead_letters_list_replay_and_discard(console: Console, db: psycopg.Connection) -> None:
    import httpx

    httpx.post(f"{console.emulator.base_url}/_control/faults", json={"status": 422, "count": 2}).raise_for_status()
    for alias in ("d1", "d2"):
        console.webhook("generic", {"action": "create", "alias": alias, "message": "m"})
    wait_for(
        lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'dead'").fetchone() == (2,), what="dead letters"
    )
    dead = console.api("GET", "/dead-letters").json()["dead_letters"]
    assert len(dead) == 2 and dead[0]["last_answer"]["http_status"] == 422 and dead[0]["attempts"] == 1
    one, two = sorted(d["id"] for d in dead)
    assert console.api("POST", "/dead-letters/discard", json={"ids": [one]}).status_code == 422  # a reason is required
    r = console.api("POST", "/dead-letters/discard", json={"ids": [one], "reason": "duplicate of INC-1"})
    assert r.json() == {"discarded": [one]}
    assert db.execute("SELECT status, discard_reason FROM outbox WHERE id = %s", (one,)).fetchone() == (
        "discarded",
        "duplicate of INC-1",
    )
    assert console.api("POST", "/dead-letters/replay", json={"ids": [two]}).json() == {"requeued": [two]}
    wait_for(
        lambda: db.execute("SELECT status FROM outbox WHERE id = %s", (two,)).fetchone() == ("delivered",),
        what="redelivery",
    )
    assert console.api("GET", "/dead-letters").json()["dead_letters"] == []
    assert console.api("POST", "/dead-letters/replay", json={}).status_code == 422
    # Each alias's history says who did what to its event (and audit.alias_timeline shows it as "console").
    hist = db.execute(
        "SELECT alias, origin, action, decision, actor, outbox_id FROM alias_history WHERE origin = 'console' ORDER BY id"
    ).fetchall()
    assert hist == [
        ("d1", "console", "dead_letter.discard", "discard", "token:ci", one),
        ("d2", "console", "dead_letter.replay", "requeue", "token:ci", two),
    ]
    audit = console.api("GET", "/audit").json()["audit"]
    assert [(a["action"], a["target"]) for a in audit[:2]] == [
        ("dead_letter.replay", f"outbox:{two}"),
        ("dead_letter.discard", f"outbox:{one}"),
    ]
    assert (
        audit[1]["after"] == {"status": "discarded", "reason": "duplicate of INC-1"} and audit[1]["actor"] == "token:ci"
    )


def test_alias_search_and_timeline(console: Console, db: psycopg.Connection) -> None:
    console.webhook("generic", {"action": "create", "alias": "disk-full", "message": "Disk full on db-1"})
    console.webhook("generic", {"action": "close", "alias": "disk-full"})
    wait_for(
        lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (2,), what="delivery"
    )
    found = console.api("GET", "/aliases?text=db-1").json()["aliases"]
    assert [(a["integration"], a["alias"], a["state"]) for a in found] == [("generic", "disk-full", "closed")]
    assert console.api("GET", "/aliases?alias=DISK").json()["aliases"][0]["alias"] == "disk-full"
    t = console.api("GET", "/timeline?integration=generic&alias=disk-full").json()
    kinds = [e["kind"] for e in t["entries"]]
    assert kinds.count("webhook") == 2 and kinds.count("decision") == 2 and kinds.count("outbox") == 2
    assert kinds.count("attempt") >= 2
    assert console.api("GET", "/timeline?integration=generic&alias=nope").status_code == 404
    assert console.api("GET", "/timeline?integration=generic").status_code == 400


def test_console_tokens_are_redacted_by_value_and_read_their_own_aliases(
    console: Console, db: psycopg.Connection
) -> None:
    """A console-made token exists only as a hash; a webhook that carries it in any header or query parameter still
    has it redacted, and the alias read API takes it (for its own integration) as it takes admin/viewer tokens."""
    r = console.api(
        "POST",
        "/integrations",
        json={"name": "cron", "template": "generic", "base_url": console.emulator.base_url, "api_key": "k"},
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    r = httpx.post(
        f"{console.base_url}/webhooks/cron",
        params={"echo": token},
        json={"alias": "nightly", "message": "backup failed"},
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-Secret": token, "X-Note": f"see {token}"},
    )
    assert r.status_code == 202, r.text
    headers, query = db.execute("SELECT headers, query FROM inbound_events WHERE integration = 'cron'").fetchone()  # type: ignore[misc]
    assert token not in json.dumps(headers) + json.dumps(query)
    assert headers["x-forwarded-secret"] == "[redacted]" and query["echo"] == "[redacted]"

    own = httpx.get(f"{console.base_url}/api/v1/aliases/cron/nightly", headers={"Authorization": f"Bearer {token}"})
    assert own.status_code == 200 and own.json()["state"] == "open"
    r = httpx.get(
        f"{console.base_url}/api/v1/aliases",
        params={"integration": "generic"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403
    # Admin and viewer tokens read every integration's aliases.
    for admin_token in (console.admin, console.viewer):
        r = console.api("GET", "/aliases/cron/nightly", token=admin_token)
        assert r.status_code == 200 and r.json()["alias"] == "nightly"
        listed = console.api("GET", "/aliases?state=open", token=admin_token).json()["aliases"]
        assert ("cron", "nightly") in [(a["integration"], a["alias"]) for a in listed]
    assert console.api("GET", "/aliases", token="abt_not-a-token").status_code == 401
