"""Built-in template sns_cloudwatch: SNS HTTP(S) deliveries of CloudWatch alarms -> events (pure, no server)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alertbridge.limits import Defaults, Event, normalize_event
from alertbridge.rendering import CompiledTemplate, TemplateError, compile_template, load_template_source, render

FIXTURES = Path(__file__).parent / "fixtures" / "sns_cloudwatch"
BODIES = sorted(p for p in FIXTURES.glob("0*.json") if not p.name.endswith((".headers.json", ".message.json")))

ARN = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:checkout-api-5xx-rate-high"
CONSOLE = "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:alarm/checkout-api-5xx-rate-high"
ALARM_REASON = (
    "Threshold Crossed: 3 out of the last 3 datapoints [41.0 (14/09/26 08:14:00), 37.0 (14/09/26 08:13:00), "
    "29.0 (14/09/26 08:12:00)] were greater than the threshold (25.0) (minimum 3 datapoints for OK -> ALARM transition)."
)
OK_REASON = (
    "Threshold Crossed: 1 out of the last 3 datapoints [4.0 (14/09/26 08:41:00)] was not greater than the threshold "
    "(25.0) (minimum 1 datapoint for ALARM -> OK transition)."
)
DIMENSIONS = "TargetGroup=targetgroup/checkout-api-tg/6d0ecf831eec9f09, LoadBalancer=app/shop-prod-alb/50dc6c495c0c9188"


@cache
def template() -> CompiledTemplate:
    name, source = load_template_source("sns_cloudwatch")
    return compile_template(source, name)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def raw_events(payload: Any) -> list[dict[str, Any]]:
    context = {"payload": payload, "headers": {}, "query": {}, "integration": "cloudwatch"}
    return render(template(), context)


def events(payload: Any, defaults: Defaults | None = None) -> list[Event]:
    return [normalize_event(raw, i, defaults or Defaults()) for i, raw in enumerate(raw_events(payload))]


def with_message(name: str, change: Any) -> dict[str, Any]:
    """A fixture body whose Message (the alarm JSON) was changed by `change(alarm)`."""
    body = load(name)
    alarm = json.loads(body["Message"])
    change(alarm)
    body["Message"] = json.dumps(alarm)
    return body


# ---------------------------------------------------------------------------------------------------------
# The fixtures


def test_fixture_messages_match_their_decoded_copies() -> None:
    for name in ("01_notification_alarm", "02_notification_ok"):
        assert json.loads(load(f"{name}.json")["Message"]) == load(f"{name}.message.json")


def test_alarm_creates_the_alert() -> None:
    (event,) = events(load("01_notification_alarm.json"))
    assert (event.action, event.alias) == ("create", ARN)
    assert event.fields == {
        "message": "checkout-api-5xx-rate-high: Threshold Crossed",
        "description": "5xx responses from the checkout ALB target group above 25/min for 3 minutes. "
        "Team: payments. Priority: P2\n\n"
        f"{ALARM_REASON}\n\n"
        "Metric: AWS/ApplicationELB/HTTPCode_Target_5XX_Count\n"
        f"Dimensions: {DIMENSIONS}\n"
        "Condition: SUM over 60 s GreaterThanThreshold 25.0 (3 out of 3 datapoints)\n"
        "State: OK -> ALARM at 2026-09-14T08:15:41.954Z\n"
        "Account: 111122223333\n"
        "Region: eu-west-1 (EU (Ireland))\n"
        f"Console: {CONSOLE}",
        "tags": [
            "account:111122223333",
            "metric:HTTPCode_Target_5XX_Count",
            "namespace:AWS/ApplicationELB",
            "region:eu-west-1",
        ],
        "details": {
            "console": CONSOLE,
            "account": "111122223333",
            "region": "eu-west-1",
            "arn": ARN,
            "metric": "AWS/ApplicationELB/HTTPCode_Target_5XX_Count",
            "dimensions": DIMENSIONS,
            "statistic": "SUM",
            "period": "60",
            "threshold": "GreaterThanThreshold 25.0",
            "reason": ALARM_REASON,
            "state_changed": "2026-09-14T08:15:41.954Z",
        },
        "entity": "targetgroup/checkout-api-tg/6d0ecf831eec9f09",
        "source": "cloudwatch",
    }
    assert "priority" not in event.fields  # no severity in CloudWatch: the integration's default applies
    assert event.cuts == ()


def test_ok_closes_the_same_alias() -> None:
    (created,) = events(load("01_notification_alarm.json"))
    (closed,) = events(load("02_notification_ok.json"))
    assert (closed.action, closed.alias) == ("close", created.alias)
    assert closed.fields == {
        "source": "cloudwatch",
        "note": f"CloudWatch alarm is OK since 2026-09-14T08:42:40.107Z: {OK_REASON}",
    }


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscriptionConfirmation"])
def test_handshakes_are_ignored(kind: str) -> None:
    body = load("00_subscription_confirmation.json")
    body["Type"] = kind
    assert raw_events(body) == [{"action": "ignore", "reason": f"SNS {kind}"}]
    (event,) = events(body)
    assert (event.action, event.alias, event.reason, event.fields) == ("ignore", "", f"SNS {kind}", {})


def test_insufficient_data_adds_a_note_and_keeps_the_alert_open() -> None:
    def change(alarm: dict[str, Any]) -> None:
        alarm.update(
            NewStateValue="INSUFFICIENT_DATA",
            OldStateValue="ALARM",
            NewStateReason="Insufficient Data: 3 datapoints were unknown.",
        )

    (event,) = events(with_message("01_notification_alarm.json", change))
    assert (event.action, event.alias) == ("note", ARN)
    assert event.fields == {
        "note": "CloudWatch alarm state is INSUFFICIENT_DATA (was ALARM) since 2026-09-14T08:15:41.954Z: "
        "Insufficient Data: 3 datapoints were unknown.",
        "source": "cloudwatch",
    }


def test_priority_is_left_to_the_integration() -> None:
    (event,) = events(load("01_notification_alarm.json"), Defaults(priority="P2"))
    assert event.fields["priority"] == "P2"
    assert raw_events(load("01_notification_alarm.json"))[0]["priority"] is None


# ---------------------------------------------------------------------------------------------------------
# Alias, links and optional parts


def test_without_an_arn_the_alias_is_name_account_region() -> None:
    bodies = [
        with_message(name, lambda alarm: alarm.pop("AlarmArn"))
        for name in ("01_notification_alarm.json", "02_notification_ok.json")
    ]
    (created,), (closed,) = events(bodies[0]), events(bodies[1])
    assert created.alias == closed.alias == "checkout-api-5xx-rate-high:111122223333:EU (Ireland)"
    assert (created.action, closed.action) == ("create", "close")
    # the region code then comes from the topic's ARN
    assert created.fields["details"]["console"] == CONSOLE
    assert "arn" not in created.fields["details"]
    assert "region:eu-west-1" in created.fields["tags"]


def test_without_any_arn_there_is_no_console_link() -> None:
    body = with_message("01_notification_alarm.json", lambda alarm: alarm.pop("AlarmArn"))
    del body["TopicArn"]
    (event,) = events(body)
    assert "console" not in event.fields["details"]
    assert "Console:" not in event.fields["description"]
    assert event.fields["details"]["region"] == "EU (Ireland)"
    assert "Region: EU (Ireland)" in event.fields["description"]


def test_console_link_encodes_the_alarm_name_and_follows_the_partition() -> None:
    def change(alarm: dict[str, Any]) -> None:
        alarm["AlarmName"] = "prod/api 5xx #1"
        alarm["AlarmArn"] = "arn:aws-cn:cloudwatch:cn-north-1:111122223333:alarm:prod/api 5xx #1"

    (event,) = events(with_message("01_notification_alarm.json", change))
    assert event.fields["details"]["console"] == (
        "https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1#alarmsV2:alarm/prod%2Fapi%205xx%20%231"
    )
    assert event.alias == "arn:aws-cn:cloudwatch:cn-north-1:111122223333:alarm:prod/api 5xx #1"


def test_metric_math_alarm_without_dimensions() -> None:
    def change(alarm: dict[str, Any]) -> None:
        alarm["Trigger"] = {
            "Period": 60,
            "EvaluationPeriods": 2,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 5,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
            "Metrics": [
                {"Expression": "100*errors/requests", "Id": "e1", "Label": "error rate", "ReturnData": True},
                {
                    "Id": "errors",
                    "MetricStat": {
                        "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count"},
                        "Period": 60,
                        "Stat": "Sum",
                    },
                    "ReturnData": False,
                },
            ],
        }
        alarm["NewStateReason"] = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:child transitioned to ALARM"

    (event,) = events(with_message("01_notification_alarm.json", change))
    assert event.fields["message"] == "checkout-api-5xx-rate-high"  # a reason starting with an ARN is left out
    assert event.fields["entity"] == "checkout-api-5xx-rate-high"  # no dimension: the alarm name
    assert (
        event.fields["details"]["metric"]
        == "e1 = 100*errors/requests; errors = AWS/ApplicationELB/HTTPCode_Target_5XX_Count (Sum)"
    )
    assert "Condition: over 60 s GreaterThanThreshold 5 (for 2 periods)" in event.fields["description"]
    assert event.fields["tags"] == ["account:111122223333", "region:eu-west-1"]


def test_minimal_alarm_message() -> None:
    body = {"Type": "Notification", "Message": json.dumps({"AlarmName": "disk-full", "NewStateValue": "ALARM"})}
    (event,) = events(body)
    assert (event.action, event.alias) == ("create", "disk-full::")
    assert event.fields == {
        "message": "disk-full",
        "description": "State: ALARM",
        "entity": "disk-full",
        "source": "cloudwatch",
    }


def test_payload_text_stays_literal() -> None:
    def change(alarm: dict[str, Any]) -> None:
        alarm["AlarmName"] = '{{ 7*7 }} "quoted" {% raw %}'
        alarm["AlarmDescription"] = "{% for x in range(10) %}x{% endfor %}"

    (event,) = events(with_message("01_notification_alarm.json", change))
    assert event.fields["message"] == '{{ 7*7 }} "quoted" {% raw %}: Threshold Crossed'
    assert event.fields["description"].startswith("{% for x in range(10) %}x{% endfor %}\n\n")


# ---------------------------------------------------------------------------------------------------------
# Partial and wrong payloads fail with a message naming what is missing


def _drop(*keys: str) -> Any:
    return lambda alarm: [alarm.pop(key) for key in keys]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            with_message("01_notification_alarm.json", _drop("AlarmName")),
            'SNS Message is not a CloudWatch alarm: it has no "AlarmName"',
        ),
        (
            with_message("01_notification_alarm.json", _drop("NewStateValue")),
            'SNS Message is not a CloudWatch alarm: it has no "NewStateValue"',
        ),
        (
            with_message("01_notification_alarm.json", _drop("AlarmName", "NewStateValue")),
            'SNS Message is not a CloudWatch alarm: it has no "AlarmName" and "NewStateValue"',
        ),
        (
            with_message("01_notification_alarm.json", lambda a: a.update(NewStateValue="PENDING")),
            'SNS Message: NewStateValue must be ALARM, OK or INSUFFICIENT_DATA, got "PENDING"',
        ),
        (
            with_message("01_notification_alarm.json", lambda a: a.update(AlarmName="")),
            'SNS Message: AlarmName must be a non-empty string, got ""',
        ),
        (
            with_message("01_notification_alarm.json", lambda a: a.update(AlarmArn=["x"])),
            'SNS Message: AlarmArn must be a string, got ["x"]',
        ),
        (
            with_message("01_notification_alarm.json", lambda a: a["Trigger"].update(Dimensions={"name": "x"})),
            'SNS Message: Trigger.Dimensions must be an array, got {"name": "x"}',
        ),
        (
            with_message("01_notification_alarm.json", lambda a: a.update(Trigger="x")),
            'SNS Message: Trigger must be an object, got "x"',
        ),
        ({"Type": "Notification"}, "SNS notification has no 'Message' text"),
        ({"Type": "Notification", "Message": {"AlarmName": "x"}}, "SNS notification has no 'Message' text"),
        (
            {"Type": "Notification", "Message": "Hello from the SNS console"},
            'SNS Message is not a CloudWatch alarm (not a JSON object): "Hello from the SNS console"',
        ),
        ({"MessageId": "x"}, "SNS payload has no 'Type' (expected an SNS HTTP(S) notification)"),
        ({"Type": "Bogus"}, "SNS payload has an unsupported 'Type': \"Bogus\""),
        (["Type"], 'SNS payload is not a JSON object (got ["Type"])'),
        (
            load("01_notification_alarm.message.json"),
            "the body is a bare CloudWatch alarm, not an SNS message: "
            "turn raw message delivery off on the SNS subscription",
        ),
    ],
)
def test_bad_payloads_fail_clearly(body: Any, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        raw_events(body)
    assert (caught.value.kind, caught.value.message) == ("runtime", message)
    assert caught.value.line is not None


def test_message_that_is_not_json_fails() -> None:
    body = load("01_notification_alarm.json")
    body["Message"] = body["Message"][:-40]  # cut short
    with pytest.raises(TemplateError) as caught:
        raw_events(body)
    assert caught.value.kind == "runtime"
    assert caught.value.message.startswith("from_json: invalid JSON (")


def test_partial_payload_does_not_change_the_fixture() -> None:
    body = load("01_notification_alarm.json")
    before = copy.deepcopy(body)
    raw_events(body)
    assert body == before
