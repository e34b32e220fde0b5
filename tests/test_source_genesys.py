"""Built-in template "genesys" (templates/genesys.j2) against the Genesys fixtures, through normalize_event.

Genesys Cloud has no alarm webhook schema: the fixtures are the bridge's proposed contract, rendered by a Web
Services Data Action (tests/fixtures/genesys/data_action_request_template.vm). Pure: no server, no database.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alertbridge.limits import LIMITS, Event, normalize_event
from alertbridge.rendering import CompiledTemplate, TemplateError, compile_template, load_template_source, render
from tests.test_limits import assert_within_limits

FIXTURES = Path(__file__).parent / "fixtures" / "genesys"
GENESYS = sorted(FIXTURES.glob("0*.json"))
ALARM_ID = "gc-sla-0f1e2d3c-20260914T0847"
PERFORMANCE = (
    "https://apps.mypurecloud.de/directory/#/analytics/queues/0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b/performance"
)


@cache
def template() -> CompiledTemplate:
    return compile_template(*reversed(load_template_source("genesys")))


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def events(payload: Any, **context: Any) -> list[Event]:
    raw = render(template(), {"payload": payload, "headers": {}, "query": {}, "integration": "genesys", **context})
    return [normalize_event(item, i) for i, item in enumerate(raw)]


def one(payload: Any, **context: Any) -> Event:
    (event,) = events(payload, **context)
    return event


# ---------------------------------------------------------------------------------------------------------
# The fixtures


def test_alarm_creates_the_alert() -> None:
    event = one(fixture("01_queue_sla_alarm.json"))
    assert (event.action, event.alias) == ("create", ALARM_ID)
    assert event.fields["message"] == "Queue Billing Support DE: service level 61.4% below target 80%"
    assert "priority" not in event.fields  # no severity in the payload: the integration's default applies
    assert event.fields["tags"] == [
        "genesys",
        "queue.sla.alarm",
        "division:Customer Care",
        "media:voice",
        "queue:Billing Support DE",
    ]
    assert event.fields["entity"] == "Billing Support DE"
    assert event.fields["source"] == "genesys"
    assert "note" not in event.fields
    assert event.cuts == ()
    assert event.fields["description"] == (
        "Service level: 61.4% (target 80%, answered within 20 s)\n"
        "Waiting: 23, longest wait 412 s\n"
        "Interacting: 9\n"
        "On-queue agents: 9, available 0\n"
        "Interval: 2026-09-14T08:30:00.000Z to 2026-09-14T09:00:00.000Z\n"
        "Rule: serviceLevelPercent lt 80 for 300 s\n\n"
        "Queue: Billing Support DE (Customer Care), media voice\n"
        f"Queue performance: {PERFORMANCE}\n"
        'Raised by Genesys Cloud flow "Queue SLA watchdog (bridge)" v14.0\n'
        "Alarm raised: 2026-09-14T08:47:12.630Z"
    )


def test_alarm_details_carry_the_metric_values() -> None:
    details = one(fixture("01_queue_sla_alarm.json")).fields["details"]
    assert list(details.items()) == [
        ("conversationsUrl", PERFORMANCE),
        ("threshold", "serviceLevelPercent lt 80"),
        ("thresholdForSeconds", "300"),
        ("oWaiting", "23"),
        ("oInteracting", "9"),
        ("oOnQueueUsers", "9"),
        ("agentsAvailable", "0"),
        ("longestWaitSeconds", "412"),
        ("serviceLevelPercent", "61.4"),
        ("serviceLevelTargetPercent", "80"),
        ("serviceLevelThresholdSeconds", "20"),
        ("intervalStart", "2026-09-14T08:30:00.000Z"),
        ("intervalEnd", "2026-09-14T09:00:00.000Z"),
        ("queueId", "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"),
        ("queueName", "Billing Support DE"),
        ("division", "Customer Care"),
        ("mediaType", "voice"),
        ("eventType", "queue.sla.alarm"),
        ("timestamp", "2026-09-14T08:47:12.630Z"),
        ("organizationId", "5d9c2a71-3e8b-4f06-9c1a-7b2e4d6f8a90"),
        ("region", "mypurecloud.de"),
        ("flowName", "Queue SLA watchdog (bridge)"),
        ("flowId", "a6e3b1d0-8c2f-4a7e-b5d9-1f0e3c2b4a68"),
        ("flowVersion", "14.0"),
    ]


def test_ok_closes_the_same_alias() -> None:
    alarm = one(fixture("01_queue_sla_alarm.json"))
    clear = one(fixture("02_queue_sla_clear.json"))
    assert (clear.action, clear.alias) == ("close", alarm.alias)
    assert clear.fields == {
        "source": "genesys",
        "note": "Cleared in Genesys Cloud at 2026-09-14T09:26:55.018Z: service level 83.9% (target 80%); "
        "alarm raised at 2026-09-14T08:47:12.630Z",
    }


# The data action inputs that reproduce 01_queue_sla_alarm.json (names as in the Velocity template).
INPUTS: dict[str, Any] = {
    "state": "ALARM",
    "alarmId": ALARM_ID,
    "organizationId": "5d9c2a71-3e8b-4f06-9c1a-7b2e4d6f8a90",
    "region": "mypurecloud.de",
    "flowId": "a6e3b1d0-8c2f-4a7e-b5d9-1f0e3c2b4a68",
    "flowName": "Queue SLA watchdog (bridge)",
    "flowVersion": "14.0",
    "queueId": "0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b",
    "queueName": "Billing Support DE",
    "divisionName": "Customer Care",
    "mediaType": "voice",
    "waiting": 23,
    "interacting": 9,
    "onQueueUsers": 9,
    "agentsAvailable": 0,
    "longestWaitSeconds": 412,
    "serviceLevelPercent": 61.4,
    "serviceLevelTargetPercent": 80,
    "serviceLevelThresholdSeconds": 20,
    "intervalStart": "2026-09-14T08:30:00.000Z",
    "intervalEnd": "2026-09-14T09:00:00.000Z",
    "forSeconds": 300,
    "conversationsUrl": PERFORMANCE,
    "timestamp": "2026-09-14T08:47:12.630Z",
}


def velocity(template_text: str, inputs: dict[str, Any]) -> str:
    """The two Velocity forms the request template uses: ${input.x} (the value as text) and
    $esc.jsonString(${input.x}) (JSON-escaped text, without quotes, as Genesys's EscapeTool does)."""
    text = re.sub(
        r"\$esc\.jsonString\(\$\{input\.(\w+)\}\)", lambda m: json.dumps(str(inputs[m[1]]))[1:-1], template_text
    )
    return re.sub(r"\$\{input\.(\w+)\}", lambda m: str(inputs[m[1]]), text)


def documented_request_template() -> str:
    doc = (Path(__file__).parent.parent / "docs" / "sources" / "genesys.md").read_text()
    (block,) = re.findall(r"```velocity\n(.*?)```", doc, re.S)
    return block


def test_documented_request_template_renders_the_fixture() -> None:
    """docs/sources/genesys.md's Velocity template, filled with the fixture's values, is exactly the ALARM fixture."""
    body = velocity(documented_request_template(), INPUTS)
    assert json.loads(body) == fixture("01_queue_sla_alarm.json")
    # names with quotes and backslashes stay valid JSON and arrive as sent
    tricky = INPUTS | {"queueName": 'Billing "DE" \\ 2nd line', "flowName": "a\tb"}
    event = one(json.loads(velocity(documented_request_template(), tricky)))
    assert event.fields["entity"] == 'Billing "DE" \\ 2nd line'
    assert event.fields["message"] == 'Queue Billing "DE" \\ 2nd line: service level 61.4% below target 80%'


def test_shared_request_template_has_the_fixture_keys() -> None:
    """The .vm copied from the shared fixtures writes the same keys, in the same order, as the documented one.
    (It leaves $esc.jsonString(...) unquoted, so it is compared with quotes added; see docs/sources/genesys.md.)"""
    vm = (FIXTURES / "data_action_request_template.vm").read_text()
    quoted = re.sub(r"(?<!\")(\$esc\.jsonString\(\$\{input\.\w+\}\))", r'"\1"', vm)
    assert quoted == documented_request_template()


# ---------------------------------------------------------------------------------------------------------
# State, severity, optional parts


@pytest.mark.parametrize(
    ("state", "action"), [("ALARM", "create"), ("OK", "close"), ("alarm", "create"), (" ok ", "close")]
)
def test_state_to_action(state: str, action: str) -> None:
    payload = fixture("01_queue_sla_alarm.json")
    payload["state"] = state
    assert one(payload).action == action


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "P1"), ("high", "P2"), ("Warning", "P3"), ("P4", "P4"), ("unknown-word", None), (None, None)],
)
def test_severity_to_priority(severity: str | None, priority: str | None) -> None:
    payload = fixture("01_queue_sla_alarm.json")
    payload["severity"] = severity
    assert one(payload).fields.get("priority") == priority


def test_integration_priority_overrides_apply() -> None:
    payload = fixture("01_queue_sla_alarm.json")
    payload["severity"] = "sla-breach"
    assert one(payload, priority_overrides={"sla-breach": "P2"}).fields["priority"] == "P2"


def test_numeric_alarm_id_is_an_alias() -> None:
    payload = fixture("01_queue_sla_alarm.json")
    payload["alarmId"] = 4711
    assert one(payload).alias == "4711"


def test_other_threshold_metrics_name_themselves() -> None:
    payload = fixture("01_queue_sla_alarm.json")
    payload["threshold"] = {"metric": "oWaiting", "operator": "gt", "value": 10, "forSeconds": 60}
    assert one(payload).fields["message"] == "Queue Billing Support DE: waiting 23 above 10"
    payload["threshold"] = {"metric": "longestWaitSeconds", "operator": "ge", "value": 300}
    assert one(payload).fields["message"] == "Queue Billing Support DE: longest wait 412 s at or above 300 s"


def test_minimal_payloads() -> None:
    alarm = one({"alarmId": "q1-sla", "state": "ALARM"})
    assert alarm.fields == {"message": "Genesys alarm q1-sla: alarm", "tags": ["genesys"], "source": "genesys"}
    assert one({"alarmId": "q1-sla", "state": "OK"}).fields == {"source": "genesys", "note": "Cleared in Genesys Cloud"}
    payload = fixture("01_queue_sla_alarm.json")
    del payload["threshold"]
    assert one(payload).fields["message"] == "Queue Billing Support DE: service level 61.4% (target 80%)"
    del payload["queue"]
    event = one(payload)
    assert event.fields["message"] == f"Genesys alarm {ALARM_ID}: service level 61.4% (target 80%)"
    assert "entity" not in event.fields


# ---------------------------------------------------------------------------------------------------------
# Missing and partial payloads


def _changed(name: str, **changes: Any) -> Any:
    payload = fixture(name)
    for key, value in changes.items():
        if value is ...:
            del payload[key]
        else:
            payload[key] = value
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (_changed("01_queue_sla_alarm.json", alarmId=...), "genesys payload: missing 'alarmId' (the alias)"),
        (_changed("02_queue_sla_clear.json", alarmId=...), "genesys payload: missing 'alarmId' (the alias)"),
        (_changed("01_queue_sla_alarm.json", alarmId=None), "genesys payload: missing 'alarmId' (the alias)"),
        (_changed("01_queue_sla_alarm.json", alarmId="  "), "genesys payload: missing 'alarmId' (the alias)"),
        (_changed("01_queue_sla_alarm.json", state=...), "genesys payload: missing 'state' (ALARM or OK)"),
        (_changed("02_queue_sla_clear.json", state=...), "genesys payload: missing 'state' (ALARM or OK)"),
        (_changed("01_queue_sla_alarm.json", state=""), "genesys payload: missing 'state' (ALARM or OK)"),
        (
            _changed("01_queue_sla_alarm.json", state="WARNING"),
            "genesys payload: unknown 'state' \"WARNING\"; expected ALARM or OK",
        ),
        (
            _changed("01_queue_sla_alarm.json", state="INSUFFICIENT_DATA"),
            "genesys payload: unknown 'state' \"INSUFFICIENT_DATA\"; expected ALARM or OK",
        ),
        (_changed("01_queue_sla_alarm.json", state=1), "genesys payload: unknown 'state' 1; expected ALARM or OK"),
        (
            _changed("01_queue_sla_alarm.json", alarmId={"id": 1}),
            "genesys payload: 'alarmId' must be a string, got {\"id\": 1}",
        ),
        (_changed("01_queue_sla_alarm.json", alarmId=True), "genesys payload: 'alarmId' must be a string, got true"),
        (
            _changed("01_queue_sla_alarm.json", queue="Billing"),
            "genesys payload: 'queue' must be an object, got \"Billing\"",
        ),
        (
            _changed("01_queue_sla_alarm.json", metrics=[1, 2]),
            "genesys payload: 'metrics' must be an object, got [1, 2]",
        ),
        (
            _changed("01_queue_sla_alarm.json", queue={"name": ["a"]}),
            "genesys payload: 'queue.name' must be a string, got [\"a\"]",
        ),
        (
            _changed("01_queue_sla_alarm.json", metrics={"oWaiting": "$" + "{input.waiting}", "oInteracting": {}}),
            "genesys payload: 'metrics.oInteracting' must be a number, got {}",
        ),
        ({}, "genesys payload: missing 'alarmId' (the alias)"),
        ({"alarmId": "a"}, "genesys payload: missing 'state' (ALARM or OK)"),
        (None, "genesys payload: must be a JSON object, got null"),
        ([], "genesys payload: must be a JSON object, got []"),
        ("ALARM", 'genesys payload: must be a JSON object, got "ALARM"'),
    ],
)
def test_missing_or_partial_payloads_fail_naming_what_is_missing(payload: Any, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        events(payload)
    assert (caught.value.kind, caught.value.message) == ("runtime", message)
    assert caught.value.line is not None


# ---------------------------------------------------------------------------------------------------------
# Within OpsGenie's limits


@pytest.mark.parametrize("path", GENESYS, ids=lambda p: p.name)
def test_fixtures_fit_opsgenie_limits_without_cuts(path: Path) -> None:
    event = one(json.loads(path.read_bytes()))
    assert_within_limits(event)
    assert len(event.alias) <= LIMITS["alias"]
    assert event.cuts == ()
    assert len(event.fields.get("message", "")) <= LIMITS["message"]
    assert len(event.fields.get("description", "")) <= LIMITS["description"]
    assert len(event.fields.get("entity", "")) <= LIMITS["entity"]
    assert len(event.fields.get("tags", [])) <= LIMITS["tags"]
    assert all(len(tag) <= LIMITS["tag_chars"] for tag in event.fields.get("tags", []))
    assert sum(len(k) + len(v) for k, v in event.fields.get("details", {}).items()) <= LIMITS["details"]


def test_oversized_values_are_cut_to_the_limits() -> None:
    payload = fixture("01_queue_sla_alarm.json")
    payload["queue"] = copy.deepcopy(payload["queue"]) | {"name": "Kø 🇩🇪 " * 900, "division": "D" * 9000}
    payload["flow"]["name"] = "‮flow\u200b" * 3000
    event = one(payload)
    assert_within_limits(event)
    assert {cut.field.split("[")[0].split(".")[0] for cut in event.cuts} >= {"message", "entity", "tags", "details"}
    assert event.fields["message"].endswith("…")
    # the metric values come first in details, so an overlong name cannot push them out
    assert event.fields["details"]["serviceLevelPercent"] == "61.4"
    assert event.fields["details"]["intervalEnd"] == "2026-09-14T09:00:00.000Z"
