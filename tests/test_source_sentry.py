"""The built-in `sentry` template against the Sentry fixtures (tests/fixtures/sentry), through normalize_event."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alertbridge import filters
from alertbridge.limits import LIMITS, Event, normalize_event
from alertbridge.rendering import CompiledTemplate, TemplateError, compile_template, load_template_source, render

FIXTURES = Path(__file__).parent / "fixtures" / "sentry"
BODIES = [path for path in sorted(FIXTURES.glob("0*.json")) if not path.name.endswith(".headers.json")]
CLIENT_SECRET = b"fixture-sentry-client-secret-0b7d2c4e"  # invented, fixture-only (see SOURCES.md)
ISSUE_ID = "5812347190"
ISSUE_URL = "https://acme-shop.sentry.io/issues/5812347190/"
EVENT_URL = "https://acme-shop.sentry.io/issues/5812347190/events/9c3e1f2a7b6d4e58a0c1d2e3f4a5b6c7/"
TITLE = "TypeError: Cannot read properties of undefined (reading 'url')"
CULPRIT = "submitPayment(src/checkout/PaymentForm.tsx)"


@cache
def template() -> CompiledTemplate:
    return compile_template(*reversed(load_template_source("sentry")))


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def headers_of(name: str) -> dict[str, str]:
    """The .headers.json of a fixture as the template sees them: names lower-cased, notes ("_...") left out."""
    raw = json.loads((FIXTURES / name.replace(".json", ".headers.json")).read_bytes())
    return {key.lower(): value for key, value in raw.items() if not key.startswith("_")}


def events(payload: Any, headers: dict[str, str] | None = None, **context: Any) -> list[Event]:
    ctx = {"payload": payload, "headers": headers or {}, "query": {}, "integration": "sentry", **context}
    return [normalize_event(raw, i) for i, raw in enumerate(render(template(), ctx))]


def one(payload: Any, headers: dict[str, str] | None = None, **context: Any) -> Event:
    (event,) = events(payload, headers, **context)
    return event


def fixture_event(name: str) -> Event:
    return one(load(name), headers_of(name))


def issue_hook(action: str, **issue: Any) -> tuple[dict[str, Any], dict[str, str]]:
    payload = load("02_issue_assigned.json")
    payload["action"] = action
    payload["data"]["issue"].update(issue)
    return payload, {"sentry-hook-resource": "issue"}


# ---------------------------------------------------------------------------------------------------------
# The fixtures


def test_event_alert_triggered_creates_the_alert() -> None:
    event = fixture_event("01_event_alert_triggered.json")
    assert (event.action, event.alias, event.cuts) == ("create", ISSUE_ID, ())
    assert event.fields == {
        "message": f"{TITLE} in {CULPRIT}",
        "description": "Cannot read properties of undefined (reading 'url')\n\n"
        f"Culprit: {CULPRIT}\n"
        "Project: checkout-web\n"
        "Environment: production\n"
        "Release: checkout-web@2026.09.13-3\n"
        "Level: error\n"
        "Event time: 2026-09-14T08:42:17.305Z\n"
        "Rule: Checkout: new unhandled error -> OpsGenie bridge\n"
        f"Issue: {ISSUE_URL}\n"
        f"Event: {EVENT_URL}",
        "tags": ["environment:production", "level:error", "platform:javascript", "project:checkout-web"],
        "details": {
            "issue_url": ISSUE_URL,
            "event_url": EVENT_URL,
            "rule": "Checkout: new unhandled error -> OpsGenie bridge",
            "project": "checkout-web",
            "environment": "production",
            "release": "checkout-web@2026.09.13-3",
            "level": "error",
            "culprit": CULPRIT,
            "platform": "javascript",
            "issue_id": ISSUE_ID,
            "event_id": "9c3e1f2a7b6d4e58a0c1d2e3f4a5b6c7",
        },
        "entity": CULPRIT,
        "source": "sentry",
        "priority": "P2",
        "user": "Sentry",
    }


def test_issue_assigned_acknowledges() -> None:
    event = fixture_event("02_issue_assigned.json")
    assert (event.action, event.alias) == ("acknowledge", ISSUE_ID)
    assert event.fields == {
        "user": "Dana Okafor",
        "source": "sentry",
        "note": "Assigned in Sentry to Dana Okafor (dana.okafor@example.com) by Dana Okafor",
    }


def test_issue_resolved_closes_the_same_alert() -> None:
    created = fixture_event("01_event_alert_triggered.json")
    closed = fixture_event("03_issue_resolved.json")
    assert (closed.action, closed.alias) == ("close", created.alias)
    assert closed.fields == {
        "user": "Dana Okafor",
        "source": "sentry",
        "note": "Resolved in Sentry by Dana Okafor in release checkout-web@2026.09.14-1",
    }


@pytest.mark.parametrize("path", BODIES, ids=lambda path: path.name)
def test_without_the_header_the_resource_comes_from_the_payload(path: Path) -> None:
    """`alertbridge render` passes no headers: the payload's shape decides, with the same result."""
    assert one(load(path.name), {}) == fixture_event(path.name)
    assert events(load(path.name), None) == events(load(path.name), headers_of(path.name))


def test_a_context_without_headers_at_all_still_renders() -> None:
    raw = render(template(), {"payload": load("03_issue_resolved.json")})
    assert [(e["action"], e["alias"]) for e in raw] == [("close", ISSUE_ID)]


@pytest.mark.parametrize("path", BODIES, ids=lambda path: path.name)
def test_fixture_signatures_match_the_bytes(path: Path) -> None:
    """The copies are byte-identical to the signed originals (the bridge checks these before the template)."""
    expected = hmac.new(CLIENT_SECRET, path.read_bytes(), hashlib.sha256).hexdigest()
    assert headers_of(path.name)["sentry-hook-signature"] == expected


def test_bad_signature_headers_do_not_match() -> None:
    bad = {k.lower(): v for k, v in json.loads((FIXTURES / "bad_signature.headers.json").read_bytes()).items()}
    body = (FIXTURES / "01_event_alert_triggered.json").read_bytes()
    assert bad["sentry-hook-signature"] != hmac.new(CLIENT_SECRET, body, hashlib.sha256).hexdigest()
    assert int(bad["sentry-hook-timestamp"]) < int(headers_of("01_event_alert_triggered.json")["sentry-hook-timestamp"])


# ---------------------------------------------------------------------------------------------------------
# Handshakes, other resources and other actions: ignored, never an alert

INSTALLATION = {
    "action": "created",
    "actor": {"id": "2938475", "name": "Dana Okafor", "type": "user"},
    "data": {
        "installation": {
            "app": {"uuid": "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d", "slug": "opsgenie-bridge"},
            "organization": {"slug": "acme-shop"},
            "uuid": "3f6a9c2e-1b4d-4e7f-8a2b-5c9d0e1f2a3b",
            "status": "installed",
        }
    },
    "installation": {"uuid": "3f6a9c2e-1b4d-4e7f-8a2b-5c9d0e1f2a3b"},
}


@pytest.mark.parametrize("action", ["created", "deleted"])
@pytest.mark.parametrize("headers", [{"sentry-hook-resource": "installation"}, {}], ids=["header", "no-header"])
def test_installation_hooks_are_ignored(action: str, headers: dict[str, str]) -> None:
    event = one({**INSTALLATION, "action": action}, headers)
    assert (event.action, event.alias, event.fields, event.reason) == ("ignore", "", {}, "Sentry installation hook")


@pytest.mark.parametrize("resource", ["metric_alert", "error", "comment", "seer", "Event_Alert_V2"])
def test_other_resources_are_ignored(resource: str) -> None:
    event = one(load("01_event_alert_triggered.json"), {"sentry-hook-resource": resource})
    assert (event.action, event.reason) == ("ignore", f"Sentry {resource.lower()} hook")


def test_unrecognisable_payload_without_header_is_ignored() -> None:
    event = one({"action": "created", "data": {"comment": {"text": "hi"}}}, {})
    assert event.action == "ignore"
    assert event.reason == "Sentry hook of unknown resource (no Sentry-Hook-Resource header)"


def test_event_alert_with_another_action_is_ignored() -> None:
    payload = load("01_event_alert_triggered.json")
    payload["action"] = "resolved"
    assert one(payload).reason == 'Sentry event_alert hook with action "resolved"'


def test_unknown_issue_action_is_ignored_without_needing_the_issue() -> None:
    event = one({"action": "escalating", "data": {}}, {"sentry-hook-resource": "issue"})
    assert (event.action, event.reason) == ("ignore", 'Sentry issue hook with action "escalating"')


# ---------------------------------------------------------------------------------------------------------
# The other issue actions


def test_issue_created_creates_with_the_issue_facts() -> None:
    event = one(*issue_hook("created", assignedTo=None, status="unresolved"))
    assert (event.action, event.alias) == ("create", ISSUE_ID)
    assert event.fields["message"] == f"{TITLE} in {CULPRIT}"
    assert event.fields["description"] == (
        "Cannot read properties of undefined (reading 'url')\n\n"
        f"Culprit: {CULPRIT}\n"
        "Project: checkout-web\n"
        "Level: error\n"
        "First seen: 2026-09-14T08:42:17.305Z\n"
        "Last seen: 2026-09-14T08:55:02.771Z\n"
        "Events: 12\n"
        "Users: 11\n"
        f"Issue: {ISSUE_URL}"
    )
    assert event.fields["tags"] == ["level:error", "platform:javascript", "project:checkout-web"]
    assert event.fields["details"] == {
        "issue_url": ISSUE_URL,
        "short_id": "CHECKOUT-WEB-3K7",
        "project": "checkout-web",
        "level": "error",
        "culprit": CULPRIT,
        "platform": "javascript",
        "status": "unresolved",
        "first_seen": "2026-09-14T08:42:17.305000Z",
        "last_seen": "2026-09-14T08:55:02.771000Z",
        "issue_id": ISSUE_ID,
    }
    assert (event.fields["priority"], event.fields["entity"], event.fields["source"]) == ("P2", CULPRIT, "sentry")
    assert "note" not in event.fields


def test_issue_unresolved_creates_again_with_a_note() -> None:
    event = one(*issue_hook("unresolved", substatus="regressed"))
    assert (event.action, event.alias) == ("create", ISSUE_ID)
    assert event.fields["note"] == "Unresolved in Sentry by Dana Okafor"


@pytest.mark.parametrize(
    ("status_details", "note"),
    [
        ({}, "Archived in Sentry by Dana Okafor"),
        ({"ignoreUntilEscalating": True}, "Archived in Sentry by Dana Okafor until it escalates"),
        ({"ignoreDuration": 30}, "Archived in Sentry by Dana Okafor for 30 minutes"),
        ({"ignoreCount": 100}, "Archived in Sentry by Dana Okafor until it occurs 100 more times"),
        ({"ignoreUserCount": 5}, "Archived in Sentry by Dana Okafor until 5 more users are affected"),
        ({"ignoreUntil": "2026-09-21T00:00:00Z"}, "Archived in Sentry by Dana Okafor until 2026-09-21T00:00:00Z"),
    ],
)
def test_issue_archived_adds_a_note(status_details: dict[str, Any], note: str) -> None:
    event = one(*issue_hook("archived", status="ignored", statusDetails=status_details))
    assert (event.action, event.alias, event.fields) == (
        "note",
        ISSUE_ID,
        {"note": note, "user": "Dana Okafor", "source": "sentry"},
    )


def test_unassigning_adds_a_note_instead_of_acknowledging() -> None:
    event = one(*issue_hook("assigned", assignedTo=None))
    assert (event.action, event.fields["note"]) == ("note", "Unassigned in Sentry by Dana Okafor")


def test_assigned_to_a_team() -> None:
    event = one(*issue_hook("assigned", assignedTo={"type": "team", "id": "42", "name": "payments"}))
    assert (event.action, event.fields["note"]) == ("acknowledge", "Assigned in Sentry to team payments by Dana Okafor")


def test_resolved_in_next_release_and_by_sentry_itself() -> None:
    payload, headers = issue_hook("resolved", statusDetails={"inNextRelease": True})
    payload["actor"] = {"id": "sentry", "name": "Sentry", "type": "application"}
    assert one(payload, headers).fields == {
        "user": "Sentry",
        "source": "sentry",
        "note": "Resolved in Sentry in the next release",
    }
    del payload["actor"]
    assert one(payload, headers).fields == {"source": "sentry", "note": "Resolved in Sentry in the next release"}


def test_numeric_issue_id_becomes_the_same_text_alias() -> None:
    payload = load("01_event_alert_triggered.json")
    payload["data"]["event"]["issue_id"] = int(ISSUE_ID)
    assert one(payload).alias == ISSUE_ID
    payload, headers = issue_hook("resolved", id=int(ISSUE_ID))
    assert one(payload, headers).alias == ISSUE_ID


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        ("fatal", "P1"),
        ("error", "P2"),
        ("warning", "P3"),
        ("info", "P4"),
        ("debug", "P5"),
        ("sample", None),
        (None, None),
    ],
)
def test_priority_follows_the_level(level: str | None, priority: str | None) -> None:
    payload = load("01_event_alert_triggered.json")
    payload["data"]["event"]["level"] = level
    assert one(payload).fields.get("priority") == priority


def test_integration_priorities_override_the_level() -> None:
    key = filters.PRIORITY_OVERRIDES
    event = one(load("01_event_alert_triggered.json"), **{key: {"error": "P4"}})
    assert event.fields["priority"] == "P4"


def test_long_title_drops_the_culprit_and_the_bridge_cuts_the_rest() -> None:
    payload = load("01_event_alert_triggered.json")
    payload["data"]["event"]["title"] = "E" * 100
    assert one(payload).fields["message"] == "E" * 100
    payload["data"]["event"]["title"] = "E" * 500
    event = one(payload)
    assert len(event.fields["message"]) == LIMITS["message"]
    assert [c.field for c in event.cuts] == ["message"]


def test_payload_text_stays_literal() -> None:
    payload = load("01_event_alert_triggered.json")
    payload["data"]["event"]["title"] = "{{ 7*7 }} {% raw %}"
    payload["data"]["event"]["culprit"] = '"}, "action": "close'
    event = one(payload)
    assert event.action == "create"
    assert event.fields["message"] == '{{ 7*7 }} {% raw %} in "}, "action": "close'


# ---------------------------------------------------------------------------------------------------------
# Partial payloads fail with a message naming what is missing


def _without(name: str, *path: str) -> dict[str, Any]:
    payload = copy.deepcopy(load(name))
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


@pytest.mark.parametrize(
    ("payload", "headers", "message"),
    [
        (
            _without("01_event_alert_triggered.json", "data", "event", "issue_id"),
            {"sentry-hook-resource": "event_alert"},
            "sentry event_alert payload has no data.event.issue_id",
        ),
        (
            _without("01_event_alert_triggered.json", "data", "event"),
            {"sentry-hook-resource": "event_alert"},
            "sentry event_alert payload has no data.event object",
        ),
        (
            _without("01_event_alert_triggered.json", "action"),
            {},
            "sentry event_alert payload has no 'action'",
        ),
        (
            _without("03_issue_resolved.json", "data", "issue", "id"),
            {},
            "sentry issue payload has no data.issue.id",
        ),
        (
            _without("03_issue_resolved.json", "data", "issue"),
            {"sentry-hook-resource": "issue"},
            "sentry issue payload has no data.issue object",
        ),
        (
            _without("02_issue_assigned.json", "action"),
            {"sentry-hook-resource": "issue"},
            "sentry issue payload has no 'action'",
        ),
        # The header wins over the payload's shape.
        (
            load("01_event_alert_triggered.json") | {"action": "resolved"},
            {"sentry-hook-resource": "issue"},
            "sentry issue payload has no data.issue object",
        ),
        ([], {}, "sentry payload must be a JSON object, got []"),
        ("text", {}, 'sentry payload must be a JSON object, got "text"'),
    ],
)
def test_partial_payloads_fail_clearly(payload: Any, headers: dict[str, str], message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        events(payload, headers)
    assert (caught.value.kind, caught.value.message) == ("runtime", message)
    assert caught.value.line is not None


def test_empty_issue_id_fails_too() -> None:
    payload = load("01_event_alert_triggered.json")
    payload["data"]["event"]["issue_id"] = "  "
    with pytest.raises(TemplateError, match=r"no data\.event\.issue_id"):
        events(payload)
