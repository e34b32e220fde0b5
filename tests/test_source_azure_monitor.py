"""Built-in template azure_monitor: Azure Monitor common alert schema webhooks -> events (pure, no server)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alertbridge.limits import Defaults, Event, normalize_event
from alertbridge.rendering import CompiledTemplate, TemplateError, compile_template, load_template_source, render

FIXTURES = Path(__file__).parent / "fixtures" / "azure_monitor"
BODIES = sorted(FIXTURES.glob("0*.json"))

SUB = "/subscriptions/6b2f8d4e-1a3c-4e5f-9b7d-0c2e4a6f8b1d"
ALERT_ID = f"{SUB}/providers/Microsoft.AlertsManagement/alerts/7c4e2a19-b8d3-4f6a-9e1c-3d5b7f9a2c40"
RULE_ID = f"{SUB}/resourceGroups/rg-payments-prod-weu/providers/microsoft.insights/metricAlerts/pay-batch-cpu-high"
TARGET = f"{SUB}/resourcegroups/rg-payments-prod-weu/providers/microsoft.compute/virtualmachines/vm-pay-batch-03"
ENCODED = "%2Fsubscriptions%2F6b2f8d4e-1a3c-4e5f-9b7d-0c2e4a6f8b1d%2Fproviders%2FMicrosoft.AlertsManagement%2Falerts%2F7c4e2a19-b8d3-4f6a-9e1c-3d5b7f9a2c40"
PORTAL = f"https://portal.azure.com/#blade/Microsoft_Azure_Monitoring/AlertDetailsTemplateBlade/alertId/{ENCODED}"
INVESTIGATE = (
    "https://portal.azure.com/#view/Microsoft_Azure_Monitoring_Alerts/Investigation.ReactView/alertId/"
    "%2fsubscriptions%2f6b2f8d4e-1a3c-4e5f-9b7d-0c2e4a6f8b1d%2fproviders%2fMicrosoft.AlertsManagement%2falerts"
    "%2f7c4e2a19-b8d3-4f6a-9e1c-3d5b7f9a2c40"
)
SEVERITIES = {"Sev0": "P1", "Sev1": "P2", "Sev2": "P3", "Sev3": "P4", "Sev4": "P5"}


@cache
def template() -> CompiledTemplate:
    name, source = load_template_source("azure_monitor")
    return compile_template(source, name)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def raw_events(payload: Any) -> list[dict[str, Any]]:
    context = {"payload": payload, "headers": {}, "query": {}, "integration": "azure"}
    return render(template(), context)


def events(payload: Any, defaults: Defaults | None = None) -> list[Event]:
    return [normalize_event(raw, i, defaults or Defaults()) for i, raw in enumerate(raw_events(payload))]


def fired(**essentials: Any) -> dict[str, Any]:
    """01_fired.json with data.essentials keys replaced (None: removed)."""
    body = load("01_fired.json")
    for key, value in essentials.items():
        if value is None:
            body["data"]["essentials"].pop(key, None)
        else:
            body["data"]["essentials"][key] = value
    return body


# ---------------------------------------------------------------------------------------------------------
# The fixtures


def test_fired_creates_the_alert() -> None:
    (event,) = events(load("01_fired.json"))
    assert (event.action, event.alias) == ("create", ALERT_ID)
    assert event.fields == {
        "message": "pay-batch-cpu-high on vm-pay-batch-03",
        "description": "Average CPU above 90% for 5 minutes on the settlement batch VM\n\n"
        "Condition: Percentage CPU GreaterThan 90 (Average), value 93.7\n"
        "Window: 2026-09-14T08:05:00Z to 2026-09-14T08:10:00Z\n"
        "Fired: 2026-09-14T08:10:41.287103Z\n"
        f"Target: {TARGET}\n"
        f"Investigate: {INVESTIGATE}\n"
        f"Portal: {PORTAL}",
        "tags": [
            "monitoringService:Platform",
            "resourceType:microsoft.compute/virtualmachines",
            "severity:Sev1",
            "signalType:Metric",
        ],
        "details": {
            "portal": PORTAL,
            "investigationLink": INVESTIGATE,
            "alertId": ALERT_ID,
            "alertRule": "pay-batch-cpu-high",
            "alertRuleID": RULE_ID,
            "severity": "Sev1",
            "signalType": "Metric",
            "monitoringService": "Platform",
            "targetResourceGroup": "rg-payments-prod-weu",
            "targetResourceType": "microsoft.compute/virtualmachines",
            "alertTargetIDs": TARGET,
            "firedDateTime": "2026-09-14T08:10:41.287103Z",
            "customProperties.opsgenie_priority": "P2",
            "customProperties.runbook": "https://runbooks.example.com/payments/batch-cpu",
            "customProperties.team": "payments",
        },
        "entity": "vm-pay-batch-03",
        "source": "azure-monitor",
        "priority": "P2",
    }
    assert event.cuts == ()


def test_resolved_closes_the_same_alias() -> None:
    (created,) = events(load("01_fired.json"))
    (closed,) = events(load("02_resolved.json"))
    assert (closed.action, closed.alias) == ("close", created.alias)
    assert closed.fields == {
        "source": "azure-monitor",
        "note": "Resolved in Azure Monitor at 2026-09-14T08:36:12.046021Z",
    }


def test_resolved_event_describes_the_resolution() -> None:
    (raw,) = raw_events(load("02_resolved.json"))
    assert "Resolved: 2026-09-14T08:36:12.046021Z" in raw["description"]
    assert raw["details"]["resolvedDateTime"] == "2026-09-14T08:36:12.046021Z"


# ---------------------------------------------------------------------------------------------------------
# Priority


@pytest.mark.parametrize(("severity", "priority"), SEVERITIES.items())
def test_severity_maps_to_priority(severity: str, priority: str) -> None:
    (event,) = events(fired(severity=severity))
    assert event.fields["priority"] == priority
    assert f"severity:{severity}" in event.fields["tags"]


@pytest.mark.parametrize("severity", ["Sev9", "", None])
def test_unknown_or_missing_severity_leaves_the_integration_default(severity: str | None) -> None:
    (event,) = events(fired(severity=severity))  # None: the key is removed
    assert "priority" not in event.fields
    (event,) = events(fired(severity=severity), Defaults(priority="P4"))
    assert event.fields["priority"] == "P4"


# ---------------------------------------------------------------------------------------------------------
# Optional and variant parts


def test_alert_rule_id_is_accepted_in_both_spellings() -> None:
    body = fired(alertRuleID=None, alertRuleId=RULE_ID)
    (event,) = events(body)
    assert event.fields["details"]["alertRuleID"] == RULE_ID
    assert "alertRuleId" not in event.fields["details"]


def test_without_optional_essentials() -> None:
    body = fired(
        alertRuleID=None,
        investigationLink=None,
        configurationItems=None,
        description=None,
        targetResourceGroup=None,
        targetResourceType=None,
    )
    body["data"]["customProperties"] = None
    body["data"]["alertContext"] = None
    (event,) = events(body)
    assert event.fields["message"] == "pay-batch-cpu-high on vm-pay-batch-03"  # from alertTargetIDs
    assert event.fields["entity"] == "vm-pay-batch-03"
    assert event.fields["description"] == (f"Fired: 2026-09-14T08:10:41.287103Z\nTarget: {TARGET}\nPortal: {PORTAL}")
    assert list(event.fields["details"]) == [
        "portal",
        "alertId",
        "alertRule",
        "severity",
        "signalType",
        "monitoringService",
        "alertTargetIDs",
        "firedDateTime",
    ]
    assert event.fields["tags"] == ["monitoringService:Platform", "severity:Sev1", "signalType:Metric"]


def test_minimal_payload() -> None:
    body = {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {"essentials": {"alertId": "a-1", "monitorCondition": "Fired"}},
    }
    (event,) = events(body)
    assert (event.action, event.alias) == ("create", "a-1")
    assert event.fields == {
        "message": "Azure Monitor alert",
        "description": "Portal: https://portal.azure.com/#blade/Microsoft_Azure_Monitoring/AlertDetailsTemplateBlade/alertId/a-1",
        "details": {
            "portal": "https://portal.azure.com/#blade/Microsoft_Azure_Monitoring/AlertDetailsTemplateBlade/alertId/a-1",
            "alertId": "a-1",
        },
        "source": "azure-monitor",
    }


def test_several_targets() -> None:
    other = TARGET.replace("vm-pay-batch-03", "vm-pay-batch-04")
    (event,) = events(fired(alertTargetIDs=[TARGET, other], configurationItems=["vm-pay-batch-03", "vm-pay-batch-04"]))
    assert event.fields["message"] == "pay-batch-cpu-high on vm-pay-batch-03 (+1 more)"
    assert event.fields["entity"] == "vm-pay-batch-03"
    assert event.fields["details"]["alertTargetIDs"] == f"{TARGET}, {other}"


def test_several_criteria_with_dimensions() -> None:
    body = load("01_fired.json")
    criterion = body["data"]["alertContext"]["condition"]["allOf"][0]
    second = dict(
        criterion, metricName="Disk Read Bytes", dimensions=[{"name": "LUN", "value": "0"}], metricValue=1.5e9
    )
    body["data"]["alertContext"]["condition"]["allOf"] = [criterion, second]
    (event,) = events(body)
    assert (
        "Conditions:\n"
        "- Percentage CPU GreaterThan 90 (Average), value 93.7\n"
        "- Disk Read Bytes GreaterThan 90 (Average), value 1500000000.0 [LUN=0]\n"
    ) in event.fields["description"]


def test_log_search_alert_context() -> None:
    body = fired(signalType="Log", monitoringService="Log Alerts V2")
    body["data"]["alertContext"] = {
        "properties": {},
        "conditionType": "LogQueryCriteria",
        "condition": {
            "windowSize": "PT10M",
            "allOf": [
                {
                    "searchQuery": "Heartbeat | summarize count() by Computer",
                    "metricMeasureColumn": None,
                    "targetResourceTypes": "['Microsoft.Compute/virtualMachines']",
                    "operator": "LowerThan",
                    "threshold": "1",
                    "timeAggregation": "Count",
                    "dimensions": [{"name": "Computer", "value": "vm-pay-batch-03"}],
                    "metricValue": 0.0,
                    "failingPeriods": {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1},
                }
            ],
            "windowStartTime": "2026-09-14T08:00:00Z",
            "windowEndTime": "2026-09-14T08:10:00Z",
        },
    }
    body["data"]["customProperties"] = None
    (event,) = events(body)
    assert (
        "Condition: log query LowerThan 1 (Count), value 0.0 [Computer=vm-pay-batch-03]\n"
        in event.fields["description"]
    )
    assert "signalType:Log" in event.fields["tags"]
    assert not any(key.startswith("customProperties.") for key in event.fields["details"])


def test_custom_properties_are_flattened_in_order() -> None:
    body = load("01_fired.json")
    body["data"]["customProperties"] = {"zeta": "z", "alpha": 3, "empty": None}
    (event,) = events(body)
    details = event.fields["details"]
    assert [k for k in details if k.startswith("customProperties.")] == [
        "customProperties.alpha",
        "customProperties.zeta",
    ]
    assert details["customProperties.alpha"] == "3"


def test_payload_text_stays_literal() -> None:
    (event,) = events(fired(alertRule="{{ 7*7 }}", description='{% raw %} "quoted"'))
    assert event.fields["message"] == "{{ 7*7 }} on vm-pay-batch-03"
    assert event.fields["description"].startswith('{% raw %} "quoted"\n\n')


# ---------------------------------------------------------------------------------------------------------
# Partial and wrong payloads fail with a message naming what is missing


def _without(*path: str) -> dict[str, Any]:
    body = load("01_fired.json")
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


ONLY_COMMON = (
    'azure_monitor supports only the common alert schema (schemaId "azureMonitorCommonAlertSchema"), got {}: '
    'set "Enable the common alert schema" to Yes on the action group\'s webhook action'
)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_without("schemaId"), ONLY_COMMON.format("no schemaId")),
        (
            {"schemaId": "AzureMonitorMetricAlert", "data": {"status": "Activated"}},
            ONLY_COMMON.format('"AzureMonitorMetricAlert"'),
        ),
        ({"schemaId": "Microsoft.Insights/activityLogs"}, ONLY_COMMON.format('"Microsoft.Insights/activityLogs"')),
        (_without("data"), "azure_monitor payload has no 'data' object"),
        (_without("data", "essentials"), "azure_monitor payload has no 'data.essentials' object"),
        (_without("data", "essentials", "alertId"), 'azure_monitor payload: data.essentials has no "alertId"'),
        (
            _without("data", "essentials", "monitorCondition"),
            'azure_monitor payload: data.essentials has no "monitorCondition"',
        ),
        (
            fired(alertId=None, monitorCondition=None),
            'azure_monitor payload: data.essentials has no "alertId" and "monitorCondition"',
        ),
        (fired(alertId=""), 'data.essentials.alertId must be a non-empty string, got ""'),
        (
            fired(monitorCondition="Activated"),
            "data.essentials.monitorCondition must be 'Fired' or 'Resolved', got \"Activated\"",
        ),
        (fired(severity=1), "data.essentials.severity must be a string, got 1"),
        (
            fired(alertTargetIDs=TARGET),
            f"data.essentials.alertTargetIDs must be an array, got {json.dumps(TARGET)[:39]}…",
        ),
        (
            fired(configurationItems=[{"name": "x"}]),
            'data.essentials.configurationItems[0] must be a string, got {"name": "x"}',
        ),
        ([], "azure_monitor payload is not a JSON object (got [])"),
    ],
)
def test_bad_payloads_fail_clearly(body: Any, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        raw_events(body)
    assert (caught.value.kind, caught.value.message) == ("runtime", message)
    assert caught.value.line is not None


def test_custom_properties_must_be_an_object() -> None:
    body = load("01_fired.json")
    body["data"]["customProperties"] = ["x"]
    with pytest.raises(TemplateError, match=r'data.customProperties must be an object, got \["x"\]'):
        raw_events(body)


def test_rendering_does_not_change_the_payload() -> None:
    body = load("01_fired.json")
    before = copy.deepcopy(body)
    raw_events(body)
    assert body == before
