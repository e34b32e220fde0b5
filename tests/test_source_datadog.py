"""The built-in `datadog` template against the Datadog fixtures (tests/fixtures/datadog), through normalize_event."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alertbridge import filters
from alertbridge.limits import Event, normalize_event
from alertbridge.rendering import CompiledTemplate, TemplateError, compile_template, load_template_source, render
from tests.test_limits import assert_within_limits

FIXTURES = Path(__file__).parent / "fixtures" / "datadog"
BODIES = sorted(FIXTURES.glob("0*.json"))
ALIAS = "112358132:7702861945531337428"
TAGS = ["env:prod", "host:web-03", "monitor", "service:orders-api", "team:orders"]
QUERY = (
    "sum(last_5m):sum:trace.http.request.errors{service:orders-api,env:prod,host:web-03}.as_count() / "
    "sum:trace.http.request.hits{service:orders-api,env:prod,host:web-03}.as_count() > 0.05"
)
LINK = "https://app.datadoghq.eu/event/event?id=8123456789012345678"
SNAPSHOT = "https://p.datadoghq.eu/snapshot/view/dd-snapshots-eu1-prod/org_481516/2026-09-14/5f1e9a7c0b2d3e4f.png"


@cache
def template() -> CompiledTemplate:
    return compile_template(*reversed(load_template_source("datadog")))


def headers() -> dict[str, str]:
    raw = json.loads((FIXTURES / "request.headers.json").read_bytes())
    return {key.lower(): value for key, value in raw.items() if not key.startswith("_")}


def load(name: str = "01_triggered.json", **changes: Any) -> Any:
    payload = json.loads((FIXTURES / name).read_bytes())
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def events(payload: Any, **context: Any) -> list[Event]:
    ctx = {"payload": payload, "headers": headers(), "query": {}, "integration": "datadog", **context}
    return [normalize_event(raw, i) for i, raw in enumerate(render(template(), ctx))]


def one(payload: Any, **context: Any) -> Event:
    (event,) = events(payload, **context)
    return event


# ---------------------------------------------------------------------------------------------------------
# The fixtures


def test_triggered_creates_the_alert() -> None:
    event = one(load("01_triggered.json"))
    assert (event.action, event.alias, event.cuts) == ("create", ALIAS, ())
    assert event.fields == {
        "message": "Orders API 5xx rate high on web-03",
        "description": "5xx ratio for orders-api on web-03 is 0.083 (threshold 0.05).\n\n"
        "Runbook: https://runbooks.example.com/orders/5xx\n"
        "@webhook-opsgenie-bridge\n\n"
        "The monitor was last triggered at Mon Sep 14 2026 08:23:10 UTC.\n\n"
        "- - -\n\n"
        "[[Monitor Status](https://app.datadoghq.eu/monitors/112358132?from_ts=1789373590000&to_ts=1789374790000"
        "&event_id=8123456789012345678)] · [[Edit Monitor](https://app.datadoghq.eu/monitors/112358132/edit)]\n\n"
        "Status: sum(last_5m):sum:trace.http.request.errors{...}.as_count() / ... was > 0.05 on average during "
        "the last 5m.\n"
        f"Query: {QUERY}\n"
        "Scope: host:web-03,env:prod,service:orders-api\n"
        f"Event: {LINK}\n"
        f"Snapshot: {SNAPSHOT}\n"
        "Time: 2026-09-14T08:23:10Z",
        "tags": TAGS,
        "details": {
            "link": LINK,
            "snapshot": SNAPSHOT,
            "alert_id": "112358132",
            "alert_cycle_key": "7702861945531337428",
            "aggreg_key": "b2c7e4f90a1d3e5f6a7b8c9d0e1f2a3b",
            "transition": "Triggered",
            "alert_type": "error",
            "alert_priority": "P2",
            "metric": "trace.http.request.errors",
            "query": QUERY,
            "scope": "host:web-03,env:prod,service:orders-api",
            "hostname": "web-03",
            "org": "Acme Shop",
            "event_type": "query_alert_monitor",
            "date": "2026-09-14T08:23:10Z",
            "tags": "env:prod,host:web-03,monitor,service:orders-api,team:orders",
        },
        "entity": "web-03",
        "source": "datadog",
        "priority": "P2",
    }


def test_recovered_closes_the_same_alert() -> None:
    created, closed = one(load("01_triggered.json")), one(load("02_recovered.json"))
    assert (closed.action, closed.alias) == ("close", created.alias)
    assert closed.fields == {"source": "datadog", "note": "Recovered in Datadog at 2026-09-14T08:43:10Z"}


def test_fixtures_are_the_payload_template_rendered() -> None:
    """The documented custom payload has exactly the fixtures' keys, in order, and every value is a $VARIABLE."""
    proposed = json.loads((FIXTURES / "webhook_payload_template.json").read_bytes())
    for path in BODIES:
        assert list(load(path.name)) == list(proposed)
    assert proposed["org"] == {"id": "$ORG_ID", "name": "$ORG_NAME"}
    assert all(value.startswith("$") for value in proposed.values() if isinstance(value, str))


def test_documented_payload_matches_the_fixture_template() -> None:
    """docs/sources/datadog.md shows the same custom payload as webhook_payload_template.json."""
    doc = (Path(__file__).parent.parent / "docs" / "sources" / "datadog.md").read_text(encoding="utf-8")
    block = doc.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(block) == json.loads((FIXTURES / "webhook_payload_template.json").read_bytes())


# ---------------------------------------------------------------------------------------------------------
# Transitions


@pytest.mark.parametrize(
    "transition", ["Triggered", "Re-Triggered", "Warn", "Re-Warn", "No Data", "Re-No Data", "Renotify", "triggered"]
)
def test_alerting_transitions_create(transition: str) -> None:
    event = one(load(alert_transition=transition))
    assert (event.action, event.alias) == ("create", ALIAS)
    assert event.fields["details"]["transition"] == transition


@pytest.mark.parametrize("transition", ["Null", "Muted", "Something New"])
def test_other_transitions_are_ignored(transition: str) -> None:
    event = one(load(alert_transition=transition, alert_id="", alert_cycle_key="", aggreg_key=""))
    assert (event.action, event.alias, event.fields) == ("ignore", "", {})
    assert event.reason == f'Datadog alert_transition "{transition}" opens or closes no alert'


# ---------------------------------------------------------------------------------------------------------
# Alias


@pytest.mark.parametrize(
    ("changes", "alias"),
    [
        ({}, ALIAS),
        ({"alert_cycle_key": ""}, "b2c7e4f90a1d3e5f6a7b8c9d0e1f2a3b"),
        ({"alert_cycle_key": None}, "b2c7e4f90a1d3e5f6a7b8c9d0e1f2a3b"),
        ({"alert_id": ""}, "b2c7e4f90a1d3e5f6a7b8c9d0e1f2a3b"),
        ({"alert_cycle_key": "", "aggreg_key": ""}, "112358132"),
        ({"alert_cycle_key": None, "aggreg_key": None}, "112358132"),
        ({"alert_id": 112358132, "alert_cycle_key": 7702861945531337428}, ALIAS),  # unquoted in a custom payload
    ],
)
def test_alias_rule(changes: dict[str, Any], alias: str) -> None:
    for name in ("01_triggered.json", "02_recovered.json"):
        assert one(load(name, **changes)).alias == alias


def test_a_new_alert_cycle_opens_a_new_alert() -> None:
    first = one(load())
    second = one(load(alert_cycle_key="7702861945531999999"))
    assert first.alias != second.alias and second.alias == "112358132:7702861945531999999"


# ---------------------------------------------------------------------------------------------------------
# Message, priority, tags, description


@pytest.mark.parametrize(
    ("alert_title", "title", "message"),
    [
        ("Orders API 5xx rate high on web-03", "ignored", "Orders API 5xx rate high on web-03"),
        ("", "[Triggered on {host:web-03}] Orders API 5xx", "Orders API 5xx"),
        (None, "[P1] [Triggered on {host:web-03}] Orders API 5xx", "Orders API 5xx"),
        ("[Warn on {host:a,env:b}] Disk 80% full", "x", "Disk 80% full"),
        ("", "[P2] [TEST] [No Data on {host:db-1}] Postgres replication lag", "[TEST] Postgres replication lag"),
        ("", "[Re-Triggered] [Staging] Queue depth", "[Staging] Queue depth"),
        ("", "Plain title", "Plain title"),
        ("", "[unclosed title", "[unclosed title"),
        ("", "[Triggered] ", "[Triggered]"),
        ("", "", "Datadog monitor 112358132"),
    ],
)
def test_message_strips_datadog_prefixes(alert_title: str | None, title: str, message: str) -> None:
    assert one(load(alert_title=alert_title, title=title)).fields["message"] == message


@pytest.mark.parametrize(
    ("alert_priority", "transition", "priority"),
    [
        ("P1", "Triggered", "P1"),
        ("p4", "Triggered", "P4"),
        ("P1", "Warn", "P1"),
        ("", "Warn", "P3"),
        ("", "Re-Warn", "P3"),
        ("", "Triggered", None),
        ("", "No Data", None),
        ("None", "Triggered", None),
        (None, "Triggered", None),
    ],
)
def test_priority(alert_priority: str | None, transition: str, priority: str | None) -> None:
    event = one(load(alert_priority=alert_priority, alert_transition=transition))
    assert event.fields.get("priority") == priority


def test_integration_priorities_override_alert_priority() -> None:
    key = filters.PRIORITY_OVERRIDES
    assert one(load(), **{key: {"p2": "P1"}}).fields["priority"] == "P1"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (" env:prod , ,team:orders,env:prod ", ["env:prod", "team:orders"]),
        ("", None),
        (None, None),
        (["a:b", " c "], ["a:b", "c"]),
    ],
)
def test_tags_are_split(tags: Any, expected: list[str] | None) -> None:
    assert one(load(tags=tags)).fields.get("tags") == expected


def test_entity_is_the_hostname_else_the_scope() -> None:
    assert one(load(hostname="")).fields["entity"] == "host:web-03,env:prod,service:orders-api"
    assert "entity" not in one(load(hostname="", alert_scope="")).fields


def test_minimal_payload_still_creates() -> None:
    event = one({"alert_transition": "Triggered", "alert_id": "42", "title": "[Triggered] CPU high"})
    assert (event.action, event.alias) == ("create", "42")
    assert event.fields == {
        "message": "CPU high",
        "details": {"alert_id": "42", "transition": "Triggered"},
        "source": "datadog",
    }
    assert one({"alert_transition": "Recovered", "alert_id": "42"}).fields == {
        "source": "datadog",
        "note": "Recovered in Datadog",
    }


def test_body_without_markdown_fence_is_kept() -> None:
    event = one(load(body="plain text", alert_status="", alert_query="", alert_scope="", link="", snapshot="", date=""))
    assert event.fields["description"] == "plain text"


def test_url_is_accepted_for_the_link() -> None:
    event = one(load(link=None, url="https://app.datadoghq.com/monitors/1"))
    assert list(event.fields["details"].items())[0] == ("link", "https://app.datadoghq.com/monitors/1")


def test_payload_text_stays_literal_and_long_text_is_cut() -> None:
    event = one(load(alert_title="{{ 7*7 }} {% raw %}", body='"}, "action": "close' + "x" * 20_000))
    assert event.action == "create"
    assert event.fields["message"] == "{{ 7*7 }} {% raw %}"
    assert_within_limits(event)
    assert [cut.field for cut in event.cuts] == ["description"]


# ---------------------------------------------------------------------------------------------------------
# Partial payloads fail with a message naming what is missing

NO_TRANSITION = (
    'datadog payload has no alert_transition: add "alert_transition": "$ALERT_TRANSITION" '
    "to the webhook's custom payload"
)
NO_IDS = (
    'datadog payload has no alert_id, alert_cycle_key or aggreg_key: add "alert_id": "$ALERT_ID", '
    '"alert_cycle_key": "$ALERT_CYCLE_KEY" and "aggreg_key": "$AGGREG_KEY" to the webhook\'s custom payload'
)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (load(alert_transition=None), NO_TRANSITION),
        (load(alert_transition=""), NO_TRANSITION),
        (load(alert_id=None, alert_cycle_key=None, aggreg_key=None), NO_IDS),
        (load(alert_id="", aggreg_key=""), NO_IDS),
        (load("02_recovered.json", alert_id=None, aggreg_key=None), NO_IDS),
        ({"body": "the default Datadog payload has no transition"}, NO_TRANSITION),
        ([], "datadog payload must be a JSON object (the webhook's custom payload), got []"),
    ],
)
def test_partial_payloads_fail_clearly(payload: Any, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        events(payload)
    assert (caught.value.kind, caught.value.message) == ("runtime", message)
    assert caught.value.line is not None
