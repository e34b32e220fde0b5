"""The built-in templates (templates/*.j2) against the fixtures of their source, through normalize_event."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alertbridge.limits import LIMITS, Event, normalize_event
from alertbridge.rendering import (
    CompiledTemplate,
    TemplateError,
    builtin_template_names,
    compile_template,
    load_template_source,
    render,
)
from tests.test_limits import assert_within_limits

FIXTURES = Path(__file__).parent / "fixtures"
ALERTMANAGER = sorted((FIXTURES / "alertmanager").glob("0*.json"))
GENERIC = sorted((FIXTURES / "generic").glob("0*.json"))
HOSTILE_ALERTMANAGER = ["long_message_5000.json", "unicode_emoji_rtl.json", "template_injection.json"]

A, B, C = "f8f9add23ebfa2db", "719a1a97ef71f433", "097d5bb1567bf9b7"
TAGS = [
    "alertname:CheckoutLatencyHigh",
    "cluster:prod-eu-1",
    "job:checkout-api",
    "namespace:payments",
    "severity:critical",
    "team:payments",
]


@cache
def template(name: str) -> CompiledTemplate:
    return compile_template(*reversed(load_template_source(name)))


def load(path: Path) -> Any:
    return json.loads(path.read_bytes())


def events(name: str, payload: Any) -> list[Event]:
    raw = render(template(name), {"payload": payload, "headers": {}, "query": {}, "integration": "it"})
    return [normalize_event(item, i) for i, item in enumerate(raw)]


def summary(event: Event) -> tuple[str, str, str | None]:
    return event.action, event.alias, event.fields.get("priority")


# ---------------------------------------------------------------------------------------------------------
# alertmanager


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("01_firing_two_alerts.json", [("create", A, "P1"), ("create", B, "P1")]),
        ("02_one_resolved_one_firing.json", [("close", A, None), ("create", B, "P1")]),
        ("03_new_alert_added.json", [("create", B, "P1"), ("create", C, "P1")]),
        ("04_all_resolved.json", [("close", B, None), ("close", C, None)]),
    ],
)
def test_alertmanager_fixtures(fixture: str, expected: list[tuple[str, str, str | None]]) -> None:
    assert [summary(e) for e in events("alertmanager", load(FIXTURES / "alertmanager" / fixture))] == expected


def test_alertmanager_create_event_in_full() -> None:
    first = events("alertmanager", load(FIXTURES / "alertmanager" / "01_firing_two_alerts.json"))[0]
    assert first.fields["message"] == "p99 latency of POST /v2/checkout above 1.5s on checkout-api-7f9c6d5b8-2xk4p"
    assert first.fields["tags"] == TAGS
    assert first.fields["entity"] == "checkout-api-7f9c6d5b8-2xk4p"
    assert first.fields["source"] == "alertmanager"
    assert "note" not in first.fields
    assert first.fields["description"] == (
        "p99 request latency for route /v2/checkout on pod checkout-api-7f9c6d5b8-2xk4p is 2.31s (threshold 1.5s) "
        "for more than 10 minutes.\n\n"
        "Runbook: https://runbooks.example.net/payments/checkout-latency-high\n"
        "Dashboard: https://grafana.example.net/d/checkout-red/checkout-red?var-pod=checkout-api-7f9c6d5b8-2xk4p\n"
        "Source: https://prometheus.prod-eu-1.example.net/graph?g0.expr=histogram_quantile%280.99%2C+sum+by+%28le%2C"
        "+pod%29+%28rate%28http_server_request_duration_seconds_bucket%7Bjob%3D%22checkout-api%22%2Croute%3D%22%2Fv2"
        "%2Fcheckout%22%7D%5B5m%5D%29%29%29+%3E+1.5&g0.tab=1\n"
        "Started: 2026-09-14T08:11:32.481Z"
    )
    details = first.fields["details"]
    assert list(details)[:7] == [
        "runbook_url",
        "dashboard",
        "generatorURL",
        "startsAt",
        "externalURL",
        "receiver",
        "groupKey",
    ]
    assert details["pod"] == "checkout-api-7f9c6d5b8-2xk4p" and details["severity"] == "critical"
    assert details["groupKey"] == '{}/{team="payments"}:{alertname="CheckoutLatencyHigh", cluster="prod-eu-1"}'
    assert first.cuts == ()


def test_alertmanager_resolve_closes_exactly_that_alert() -> None:
    closed, still_firing = events("alertmanager", load(FIXTURES / "alertmanager" / "02_one_resolved_one_firing.json"))
    assert closed.action == "close" and closed.alias == A
    assert closed.fields == {"source": "alertmanager", "note": "Resolved in Alertmanager at 2026-09-14T08:17:32.481Z"}
    assert still_firing.action == "create" and still_firing.alias == B


def _without_fingerprints(payload: dict[str, Any]) -> dict[str, Any]:
    payload["alerts"] = [{k: v for k, v in alert.items() if k != "fingerprint"} for alert in payload["alerts"]]
    return payload


@pytest.mark.parametrize("missing", ["absent", "empty"])
def test_alertmanager_without_fingerprint_uses_a_stable_labels_hash(missing: str) -> None:
    firing = load(FIXTURES / "alertmanager" / "01_firing_two_alerts.json")
    resolved = load(FIXTURES / "alertmanager" / "02_one_resolved_one_firing.json")
    for payload in (firing, resolved):
        if missing == "absent":
            _without_fingerprints(payload)
        else:
            for alert in payload["alerts"]:
                alert["fingerprint"] = ""
    (fa, fb), (ra, rb) = events("alertmanager", firing), events("alertmanager", resolved)
    assert (fa.action, ra.action, rb.action) == ("create", "close", "create")
    assert fa.alias == ra.alias and fb.alias == rb.alias and fa.alias != fb.alias
    assert len(fa.alias) == 64 and int(fa.alias, 16) >= 0
    # independent of label order
    shuffled = dict(reversed(list(firing["alerts"][0]["labels"].items())))
    firing["alerts"][0]["labels"] = shuffled
    assert events("alertmanager", firing)[0].alias == fa.alias


def test_alertmanager_tolerates_missing_optional_parts() -> None:
    payload = {
        "alerts": [
            {"status": "firing", "labels": {"alertname": "HostDown", "instance": "db1:9100"}},
            {"status": "firing", "labels": {"alertname": "X"}, "annotations": None, "fingerprint": "abc"},
            {"status": "resolved", "labels": {"alertname": "X"}, "fingerprint": "abc"},
        ]
    }
    first, second, third = events("alertmanager", payload)
    assert first.fields["message"] == "HostDown on db1:9100"
    assert first.fields["entity"] == "db1:9100"
    assert "priority" not in first.fields  # no severity: the integration's default priority applies
    assert "description" not in first.fields
    assert first.fields["details"] == {"alertname": "HostDown", "instance": "db1:9100"}
    assert second.fields["message"] == "X"
    assert third.fields == {"source": "alertmanager", "note": "Resolved in Alertmanager"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("alerts_null.json", "alertmanager payload has no 'alerts' list"),
        (
            "alerts_empty.json",
            "alertmanager payload has an empty 'alerts' list; Alertmanager never sends an empty group",
        ),
        ("wrong_types.json", "alerts[0].labels.alertname must be a string, got 404"),
        ("top_level_array.json", "alertmanager payload has no 'alerts' list"),
        ("top_level_null.json", "alertmanager payload has no 'alerts' list"),
        ("top_level_string.json", "alertmanager payload has no 'alerts' list"),
        ({}, "alertmanager payload has no 'alerts' list"),
        ({"alerts": {"a": 1}}, "alertmanager payload has no 'alerts' list ('alerts' is {\"a\": 1})"),
        ({"alerts": "x"}, "alertmanager payload has no 'alerts' list ('alerts' is \"x\")"),
        ({"alerts": ["not-an-object"]}, "alerts[0] is not an object"),
        (
            {"alerts": [{"status": "pending", "labels": {}}]},
            "alerts[0].status must be 'firing' or 'resolved', got \"pending\"",
        ),
        ({"alerts": [{"status": "firing", "labels": ["a"]}]}, "alerts[0].labels and .annotations must be objects"),
        (
            {"alerts": [{"status": "firing", "labels": {}, "annotations": {"summary": 3.14}}]},
            "alerts[0].annotations.summary must be a string, got 3.14",
        ),
        (
            {"alerts": [{"status": "firing", "labels": {}, "fingerprint": 12}]},
            "alerts[0].fingerprint must be a string, got 12",
        ),
        (
            {"alerts": [{"status": "firing", "labels": {}, "startsAt": 1789374692}]},
            "alerts[0].startsAt must be a string, got 1789374692",
        ),
    ],
)
def test_alertmanager_bad_payloads_fail_clearly(payload: str | dict[str, Any], message: str) -> None:
    data = load(FIXTURES / "hostile" / payload) if isinstance(payload, str) else payload
    with pytest.raises(TemplateError) as caught:
        events("alertmanager", data)
    assert (caught.value.kind, caught.value.message) == ("runtime", message)
    assert caught.value.line is not None


def test_alertmanager_template_injection_stays_literal() -> None:
    first, second = events("alertmanager", load(FIXTURES / "hostile" / "template_injection.json"))
    assert first.fields["message"].startswith("{{ 7*7 }} {% raw %} {{ ().__class__.__mro__ }}")
    assert first.fields["details"]["alertname"] == "{{ 7*7 }}"
    assert first.fields["details"]["sql"] == "'; DROP TABLE alias_state; --"
    assert "alertname:{{ 7*7 }}" in first.fields["tags"]
    assert first.fields["description"].startswith("{% for c in [].__class__.__base__.__subclasses__() %}")
    assert second.alias == B


# ---------------------------------------------------------------------------------------------------------
# generic


def test_generic_fixtures() -> None:
    (create,) = events("generic", load(FIXTURES / "generic" / "01_create.json"))
    assert (create.action, create.alias) == ("create", "backup-nightly-db01")
    assert create.fields == {
        "message": "Nightly backup of db01 failed",
        "description": "pg_dump exited with status 2 after 41 minutes.\n"
        "See /var/log/backup/db01.log on backup01.example.net.",
        "responders": [{"type": "team", "name": "dba"}],
        "tags": ["backup", "db01", "postgres"],
        "details": {
            "duration_seconds": "2461",
            "exit_code": "2",
            "host": "backup01.example.net",
            "log": "/var/log/backup/db01.log",
        },
        "entity": "db01.example.net",
        "source": "backup-script",
        "priority": "P2",
    }
    (ack,) = events("generic", load(FIXTURES / "generic" / "02_acknowledge.json"))
    assert (ack.action, ack.alias, ack.fields) == (
        "acknowledge",
        "backup-nightly-db01",
        {"user": "backup-bot", "note": "Retrying the backup with a longer timeout."},
    )
    note, close = events("generic", load(FIXTURES / "generic" / "03_close.json"))
    assert (note.action, note.fields) == ("note", {"note": "Retry finished in 44 minutes; dump is 18.2 GiB."})
    assert (close.action, close.alias, close.fields) == (
        "close",
        "backup-nightly-db01",
        {"user": "backup-bot", "note": "Backup succeeded on retry."},
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"alias": "a", "message": "m"}, [{"action": "create", "alias": "a", "message": "m"}]),
        ({"alias": 7, "message": "m", "extra": {"x": 1}}, [{"action": "create", "alias": 7, "message": "m"}]),
        ({"action": "ignore", "reason": "test ping"}, [{"action": "ignore", "reason": "test ping"}]),
        ({"events": []}, []),
        (
            {"events": [{"alias": "a", "message": "m"}, {"action": "close", "alias": "a"}]},
            [{"action": "create", "alias": "a", "message": "m"}, {"action": "close", "alias": "a"}],
        ),
    ],
)
def test_generic_passes_known_fields_through(payload: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    assert render(template("generic"), {"payload": payload}) == expected


@pytest.mark.parametrize(
    ("payload", "message", "field"),
    [
        ([], 'the payload must be a JSON object: one event, or {"events": [...]}', None),
        ({"events": {"alias": "a"}}, "'events' must be an array of event objects", "events"),
        ({"events": None}, "'events' must be an array of event objects", "events"),
        ({"events": ["x"]}, "events[0] must be an object", "events[0]"),
        (
            {"message": "m"},
            "the payload has no 'alias' (every action but 'ignore' needs the alert's alias)",
            "alias",
        ),
        (
            {"alias": "  ", "action": "close"},
            "the payload's 'alias' is empty (every action but 'ignore' needs the alert's alias)",
            "alias",
        ),
        ({"alias": {"x": 1}}, "the payload's 'alias' must be a string", "alias"),
        (
            {"events": [{"alias": "a"}, {"action": "close"}]},
            "the payload has no 'events[1].alias' (every action but 'ignore' needs the alert's alias)",
            "events[1].alias",
        ),
        (
            {"alias": "a", "action": "resolve"},
            "the payload's 'action' must be one of create, acknowledge, close, note, ignore (got \"resolve\")",
            "action",
        ),
        (
            {"events": [{"alias": "a", "action": 3}]},
            "the payload's 'events[0].action' must be one of create, acknowledge, close, note, ignore (got 3)",
            "events[0].action",
        ),
    ],
)
def test_generic_bad_payloads_are_the_senders_errors(payload: Any, message: str, field: str | None) -> None:
    """What the sender must fix is a payload error (422 payload_error), naming the field, not a template error."""
    with pytest.raises(TemplateError) as caught:
        render(template("generic"), {"payload": payload})
    assert (caught.value.kind, caught.value.message, caught.value.field) == ("payload", message, field)


def test_generic_ignore_needs_no_alias() -> None:
    assert render(template("generic"), {"payload": {"action": "ignore", "reason": "test"}}) == [
        {"action": "ignore", "reason": "test"}
    ]


def test_generic_null_alias_is_a_payload_error() -> None:
    with pytest.raises(TemplateError) as caught:
        render(template("generic"), {"payload": load(FIXTURES / "hostile" / "null_alias_generic.json")})
    assert (caught.value.kind, caught.value.field) == ("payload", "alias")


# ---------------------------------------------------------------------------------------------------------
# Every built-in template x every fixture of its source: within OpsGenie's limits


def source_fixtures(name: str) -> list[Path]:
    """The webhook bodies in tests/fixtures/<name>/ (not headers, decoded messages or sender-side templates)."""
    skip = (".headers.json", ".message.json")
    return sorted(
        p
        for p in (FIXTURES / name).glob("*.json")
        if not p.name.endswith(skip) and p.name != "webhook_payload_template.json"
    )


def fixture_headers(path: Path) -> dict[str, str]:
    headers = path.with_name(path.stem + ".headers.json")
    if not headers.exists():
        return {}
    return {k.lower(): v for k, v in json.loads(headers.read_text()).items() if not k.startswith("_")}


def test_every_builtin_template_has_fixtures_and_a_guide() -> None:
    for name in builtin_template_names():
        assert source_fixtures(name), f"templates/{name}.j2 has no fixtures in tests/fixtures/{name}/"
        assert (Path(__file__).parent.parent / "docs" / "sources" / f"{name}.md").exists(), name


@pytest.mark.parametrize(
    ("name", "fixture"),
    [(name, path) for name in builtin_template_names() for path in source_fixtures(name)]
    + [("alertmanager", FIXTURES / "hostile" / name) for name in HOSTILE_ALERTMANAGER],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_every_fixture_fits_opsgenie_limits(name: str, fixture: Path) -> None:
    """Every built-in template x every fixture of its source: valid events within OpsGenie's limits."""
    context = {"payload": load(fixture), "headers": fixture_headers(fixture), "query": {}, "integration": "it"}
    result = [normalize_event(item, i) for i, item in enumerate(render(template(name), context))]
    assert result
    for event in result:
        assert_within_limits(event)
        assert len(event.alias) <= LIMITS["alias"]
        if fixture.parent.name != "hostile":  # realistic payloads fit without cutting anything
            assert event.cuts == (), event.cuts


def test_labels_hash_matches_documented_recipe() -> None:
    """docs/templates.md: alias = sha256 of the labels as JSON with sorted keys (Jinja's tojson)."""
    payload = _without_fingerprints(load(FIXTURES / "alertmanager" / "01_firing_two_alerts.json"))
    labels = payload["alerts"][0]["labels"]
    text = json.dumps(labels, sort_keys=True, ensure_ascii=False)
    assert events("alertmanager", payload)[0].alias == hashlib.sha256(text.encode()).hexdigest()
