"""Built-in template "grafana" (templates/grafana.j2) against the Grafana fixtures, through normalize_event.

Pure: no server, no database. The fixtures in tests/fixtures/grafana/ are byte-identical copies of the shared ones.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alertbridge.limits import LIMITS, Event, normalize_event
from alertbridge.rendering import CompiledTemplate, TemplateError, compile_template, load_template_source, render
from tests.test_limits import assert_within_limits

FIXTURES = Path(__file__).parent / "fixtures"
GRAFANA = sorted((FIXTURES / "grafana").glob("0*.json"))
HOSTILE = ["long_message_5000.json", "unicode_emoji_rtl.json", "template_injection.json"]

PRIMARY, REPLICA = "6e45a080dcec65e9", "dccc29c1ca6f6850"
TAGS = ["alertname:PostgresDiskSpaceLow", "env:prod", "grafana_folder:Storage", "severity:critical", "team:dba"]
SILENCE = (
    "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=__alert_rule_uid__%3Dfe4kq7w2m9xdcb"
    "&matcher=env%3Dprod&matcher=instance%3Dpg-primary-01.db.example.com%3A9100&matcher=mountpoint%3D%2Fvar%2Flib"
    "%2Fpostgresql&matcher=severity%3Dcritical&matcher=team%3Ddba&orgId=1"
)
DASHBOARD = "https://grafana.example.com/d/storage-overview?from=1789374000000&orgId=1&to=1789377630512"

# What Grafana posts for the contact point's "Test" button (grafana/alerting notify: newTestAlert + the webhook
# notifier): labels alertname=TestAlert, instance=Grafana; annotation summary "Notification test"; no rule, so no
# generatorURL; receiver "test" or the contact point's name depending on the version.
TEST_NOTIFICATION: dict[str, Any] = {
    "receiver": "test",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "TestAlert", "instance": "Grafana"},
            "annotations": {"summary": "Notification test"},
            "startsAt": "2026-09-14T09:31:07.151Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": "57c6d9296de2ad39",
            "silenceURL": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DTestAlert&matcher=instance%3DGrafana",
            "dashboardURL": "",
            "panelURL": "",
            "values": None,
            "valueString": "[ metric='foo' labels={instance=bar} value=10 ]",
        }
    ],
    "groupLabels": {"alertname": "TestAlert", "instance": "Grafana"},
    "commonLabels": {"alertname": "TestAlert", "instance": "Grafana"},
    "commonAnnotations": {"summary": "Notification test"},
    "externalURL": "https://grafana.example.com/",
    "version": "1",
    "groupKey": "test-57c6d9296de2ad39-1789378267",
    "truncatedAlerts": 0,
    "orgId": 1,
    "title": "[FIRING:1] TestAlert Grafana ",
    "state": "alerting",
    "message": "**Firing**\n\nValue: [no value]\nLabels:\n - alertname = TestAlert\n - instance = Grafana\n",
}


@cache
def template() -> CompiledTemplate:
    return compile_template(*reversed(load_template_source("grafana")))


def load(path: Path) -> Any:
    return json.loads(path.read_bytes())


def fixture(name: str) -> Any:
    return load(FIXTURES / "grafana" / name)


def events(payload: Any, **context: Any) -> list[Event]:
    raw = render(template(), {"payload": payload, "headers": {}, "query": {}, "integration": "grafana", **context})
    return [normalize_event(item, i) for i, item in enumerate(raw)]


def failure(payload: Any) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        events(payload)
    assert caught.value.kind == "runtime" and caught.value.line is not None
    return caught.value


# ---------------------------------------------------------------------------------------------------------
# The fixtures, event by event


def test_firing_creates_one_alert_per_grafana_alert() -> None:
    primary, replica = events(fixture("01_firing.json"))
    assert (primary.action, primary.alias, replica.action, replica.alias) == ("create", PRIMARY, "create", REPLICA)
    assert primary.fields["message"] == "Disk usage on pg-primary-01.db.example.com:9100 /var/lib/postgresql is 93.41%"
    assert replica.fields["message"] == "Disk usage on pg-replica-02.db.example.com:9100 /var/lib/postgresql is 91.07%"
    for event in (primary, replica):
        assert event.fields["priority"] == "P1"  # labels.severity = critical
        assert event.fields["tags"] == TAGS
        assert event.fields["source"] == "grafana"
        assert "note" not in event.fields
        assert event.cuts == ()
    assert primary.fields["entity"] == "pg-primary-01.db.example.com:9100"
    assert replica.fields["entity"] == "pg-replica-02.db.example.com:9100"


def test_firing_description_and_details() -> None:
    primary, replica = events(fixture("01_firing.json"))
    assert primary.fields["description"] == (
        "Filesystem /var/lib/postgresql on pg-primary-01.db.example.com:9100 has been above 90% usage for 5m. "
        "Current value: 93.41%.\n\n"
        "Value: A=93.41, B=93.41, C=1\n\n"
        "Runbook: https://runbooks.example.com/dba/postgres-disk-space\n"
        f"Dashboard: {DASHBOARD}\n"
        f"Panel: {DASHBOARD}&viewPanel=14\n"
        "Rule: https://grafana.example.com/alerting/grafana/fe4kq7w2m9xdcb/view?orgId=1\n"
        f"Silence: {SILENCE}\n"
        "Image: https://grafana.example.com/public/img/attachments/Zm9pcyBsZXMgaW1hZ2Vz-pg-primary-01.db.example.com.png\n"
        "Started: 2026-09-14T09:20:00Z"
    )
    assert "Image: " not in replica.fields["description"]  # no imageURL on the second alert
    details = primary.fields["details"]
    assert list(details) == [
        "runbook_url",
        "dashboardURL",
        "panelURL",
        "generatorURL",
        "silenceURL",
        "imageURL",
        "valueString",
        "startsAt",
        "receiver",
        "externalURL",
        "groupKey",
        "alertname",
        "env",
        "grafana_folder",
        "instance",
        "mountpoint",
        "severity",
        "team",
    ]
    assert details["silenceURL"] == SILENCE  # Go's \u0026 arrives as &
    assert details["dashboardURL"] == DASHBOARD
    assert details["valueString"].startswith("[ var='A' labels={instance=pg-primary-01.db.example.com:9100")
    assert details["receiver"] == "opsgenie-bridge"
    assert details["mountpoint"] == "/var/lib/postgresql"
    assert "imageURL" not in replica.fields["details"]


def test_resolved_closes_the_same_aliases() -> None:
    firing = events(fixture("01_firing.json"))
    resolved = events(fixture("02_resolved.json"))
    assert [(e.action, e.alias) for e in resolved] == [("close", PRIMARY), ("close", REPLICA)]
    assert [e.alias for e in resolved] == [e.alias for e in firing]
    for event in resolved:
        assert event.fields == {"source": "grafana", "note": "Resolved in Grafana at 2026-09-14T10:40:00Z"}


def test_one_resolved_one_still_firing() -> None:
    payload = fixture("01_firing.json")
    payload["alerts"][0] = fixture("02_resolved.json")["alerts"][0]
    closed, firing = events(payload)
    assert (closed.action, closed.alias, firing.action, firing.alias) == ("close", PRIMARY, "create", REPLICA)


def test_deprecated_top_level_fields_are_not_used() -> None:
    """title, state, message, dashboardURL, panelURL (top level) are marked deprecated by Grafana."""
    payload = fixture("01_firing.json")
    expected = events(payload)
    for key in ("title", "state", "message", "dashboardURL", "panelURL", "status", "commonLabels"):
        payload.pop(key, None)
    assert events(payload) == expected


# ---------------------------------------------------------------------------------------------------------
# Test notification


def test_test_notification_is_ignored() -> None:
    assert render(template(), {"payload": TEST_NOTIFICATION}) == [
        {"action": "ignore", "reason": "Grafana test notification"}
    ]
    (event,) = events(TEST_NOTIFICATION)
    assert (event.action, event.alias, event.fields, event.reason) == ("ignore", "", {}, "Grafana test notification")


@pytest.mark.parametrize(
    "change",
    [
        {"receiver": "opsgenie-bridge"},  # newer Grafana: the contact point's name
        {"annotations": {"summary": "custom test", "description": "a custom test notification"}},
        {"labels": {"alertname": "TestAlert", "instance": "Grafana", "severity": "critical"}},
        {"status": "resolved"},
    ],
    ids=["receiver-name", "custom-annotations", "extra-labels", "resolved"],
)
def test_test_notification_variants_are_ignored(change: dict[str, Any]) -> None:
    payload = copy.deepcopy(TEST_NOTIFICATION)
    if "receiver" in change:
        payload.update(change)
    else:
        payload["alerts"][0].update(change)
    assert [(e.action, e.reason) for e in events(payload)] == [("ignore", "Grafana test notification")]


@pytest.mark.parametrize(
    "labels",
    [
        {"alertname": "TestAlert", "instance": "grafana-01:3000"},
        {"alertname": "TestAlertRule", "instance": "Grafana"},
        {"alertname": "TestAlert"},
    ],
)
def test_only_the_exact_test_labels_are_ignored(labels: dict[str, str]) -> None:
    payload = copy.deepcopy(TEST_NOTIFICATION)
    payload["alerts"][0]["labels"] = labels
    (event,) = events(payload)
    assert (event.action, event.alias, event.fields["message"]) == ("create", "57c6d9296de2ad39", "Notification test")


def test_test_alert_next_to_a_real_alert() -> None:
    payload = fixture("01_firing.json")
    payload["alerts"].insert(1, TEST_NOTIFICATION["alerts"][0])
    assert [(e.action, e.alias) for e in events(payload)] == [("create", PRIMARY), ("ignore", ""), ("create", REPLICA)]


# ---------------------------------------------------------------------------------------------------------
# Optional parts, priorities


def test_minimal_alert() -> None:
    payload = {
        "alerts": [
            {"status": "firing", "fingerprint": "a1", "labels": {"alertname": "HostDown", "instance": "db1:9100"}},
            {"status": "firing", "fingerprint": "a2", "labels": {"alertname": "X", "pod": "p-1"}, "annotations": None},
            {"status": "firing", "fingerprint": "a3", "values": {"B": 2, "A": 0.5}},
            {"status": "resolved", "fingerprint": "a1", "labels": {"alertname": "HostDown"}},
        ]
    }
    first, second, third, fourth = events(payload)
    assert first.fields["message"] == "HostDown on db1:9100"
    assert first.fields["entity"] == "db1:9100"
    assert "priority" not in first.fields  # no severity: the integration's default priority applies
    assert "description" not in first.fields
    assert first.fields["details"] == {"alertname": "HostDown", "instance": "db1:9100"}
    assert (second.fields["message"], second.fields["entity"]) == ("X", "p-1")
    assert third.fields["message"] == "Grafana alert"
    assert third.fields["description"] == "Value: A=0.5, B=2"
    assert "entity" not in third.fields and "tags" not in third.fields
    assert (fourth.action, fourth.alias, fourth.fields) == (
        "close",
        "a1",
        {"source": "grafana", "note": "Resolved in Grafana"},
    )


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "P1"), ("HIGH", "P2"), ("warning", "P3"), ("info", "P4"), ("sev-unknown", None), ("", None)],
)
def test_severity_to_priority(severity: str, priority: str | None) -> None:
    payload = fixture("01_firing.json")
    payload["alerts"][0]["labels"]["severity"] = severity
    assert events(payload)[0].fields.get("priority") == priority


def test_integration_priority_overrides_apply() -> None:
    """[integrations.priorities] reaches the template as priority_overrides; the priority filter applies it."""
    payload = fixture("01_firing.json")
    payload["alerts"][1]["labels"]["severity"] = "sev1"
    primary, replica = events(payload, priority_overrides={"critical": "P2", "sev1": "P1"})
    assert (primary.fields["priority"], replica.fields["priority"]) == ("P2", "P1")


# ---------------------------------------------------------------------------------------------------------
# Missing and partial payloads


def _without(name: str, *path: str | int) -> Any:
    payload = fixture(name)
    target = payload
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_without("01_firing.json", "alerts"), "grafana payload: missing 'alerts' list"),
        (_without("02_resolved.json", "alerts", 0, "status"), "grafana payload alerts[0]: missing 'status'"),
        (_without("01_firing.json", "alerts", 1, "status"), "grafana payload alerts[1]: missing 'status'"),
        (
            _without("01_firing.json", "alerts", 0, "fingerprint"),
            "grafana payload alerts[0]: missing 'fingerprint' (the alias)",
        ),
        (
            _without("02_resolved.json", "alerts", 1, "fingerprint"),
            "grafana payload alerts[1]: missing 'fingerprint' (the alias)",
        ),
        ({}, "grafana payload: missing 'alerts' list"),
        (None, "grafana payload: missing 'alerts' list"),
        ([], "grafana payload: missing 'alerts' list"),
        ("firing", "grafana payload: missing 'alerts' list"),
        ({"alerts": None}, "grafana payload: missing 'alerts' list"),
        ({"alerts": []}, "grafana payload: empty 'alerts' list; Grafana never sends an empty notification"),
        ({"alerts": {"a": 1}}, "grafana payload: 'alerts' is not a list (got {\"a\": 1})"),
        ({"alerts": "x"}, "grafana payload: 'alerts' is not a list (got \"x\")"),
        ({"alerts": ["x"]}, "grafana payload alerts[0]: not an object"),
        ({"alerts": [{"status": "", "fingerprint": "f"}]}, "grafana payload alerts[0]: missing 'status'"),
        (
            {"alerts": [{"status": "firing", "fingerprint": ""}]},
            "grafana payload alerts[0]: missing 'fingerprint' (the alias)",
        ),
        (
            {"alerts": [{"status": "pending", "fingerprint": "f"}]},
            "grafana payload alerts[0]: 'status' must be 'firing' or 'resolved', got \"pending\"",
        ),
        (
            {"alerts": [{"status": "firing", "fingerprint": 12}]},
            "grafana payload alerts[0]: 'fingerprint' must be a string, got 12",
        ),
        (
            {"alerts": [{"status": "firing", "fingerprint": "f", "labels": ["a"]}]},
            "grafana payload alerts[0]: 'labels' and 'annotations' must be objects",
        ),
        (
            {"alerts": [{"status": "firing", "fingerprint": "f", "labels": {"alertname": 404}}]},
            "grafana payload alerts[0]: labels.alertname must be a string, got 404",
        ),
        (
            {"alerts": [{"status": "firing", "fingerprint": "f", "annotations": {"summary": 3.14}}]},
            "grafana payload alerts[0]: annotations.summary must be a string, got 3.14",
        ),
        (
            {"alerts": [{"status": "firing", "fingerprint": "f", "startsAt": 1789374692}]},
            "grafana payload alerts[0]: 'startsAt' must be a string, got 1789374692",
        ),
    ],
)
def test_missing_or_partial_payloads_fail_naming_what_is_missing(payload: Any, message: str) -> None:
    assert failure(payload).message == message


# ---------------------------------------------------------------------------------------------------------
# Every fixture within OpsGenie's limits


@pytest.mark.parametrize("path", GRAFANA, ids=lambda p: p.name)
def test_fixtures_fit_opsgenie_limits_without_cuts(path: Path) -> None:
    result = events(load(path))
    assert result
    for event in result:
        assert_within_limits(event)
        assert len(event.alias) <= LIMITS["alias"]
        assert event.cuts == ()
        assert len(event.fields.get("message", "")) <= LIMITS["message"]
        assert len(event.fields.get("description", "")) <= LIMITS["description"]
        assert len(event.fields.get("tags", [])) <= LIMITS["tags"]
        assert sum(len(k) + len(v) for k, v in event.fields.get("details", {}).items()) <= LIMITS["details"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_alerts_fit_opsgenie_limits(name: str) -> None:
    result = events(load(FIXTURES / "hostile" / name))
    assert result
    for event in result:
        assert_within_limits(event)


def test_test_notification_fits_opsgenie_limits() -> None:
    for event in events(TEST_NOTIFICATION):
        assert_within_limits(event)


def test_template_injection_stays_literal() -> None:
    first = events(load(FIXTURES / "hostile" / "template_injection.json"))[0]
    assert first.fields["message"].startswith("{{ 7*7 }} {% raw %} {{ ().__class__.__mro__ }}")
    assert first.fields["details"]["alertname"] == "{{ 7*7 }}"
