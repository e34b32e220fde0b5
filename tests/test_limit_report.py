"""The limit report is pure: a plan's events -> which field was cut, by how many characters."""

from __future__ import annotations

import pytest

from alertbridge.admin.report import cut_numbers, limit_report
from alertbridge.core.plan import PlanSpec, plan
from alertbridge.limits import normalize_event


@pytest.mark.parametrize(
    ("detail", "numbers"),
    [
        ("5000 -> 130 characters", {"before": 5000, "after": 130, "removed": 4870}),
        ("131 -> 130 characters", {"before": 131, "after": 130, "removed": 1}),
        ("dropped 5 tags over the limit of 20", {"dropped": 5}),
        ("dropped 3 responders entries over the limit of 50", {"dropped": 3}),
        ("600 -> 512 characters (prefix + '~' + sha256 prefix)", {"before": 600, "after": 512, "removed": 88}),
        ("dropped details keys over the 8000-character limit: a, b", {}),
        ("something else", {}),
    ],
)
def test_cut_numbers(detail: str, numbers: dict[str, int]) -> None:
    assert cut_numbers(detail) == numbers


def test_the_report_of_a_real_plan_names_each_cut() -> None:
    from datetime import UTC, datetime

    events = [
        normalize_event(
            {"action": "create", "alias": "a", "message": "m" * 200, "tags": [f"t{i}" for i in range(25)]}, 0
        ),
        normalize_event({"action": "create", "alias": "b", "message": "short"}, 1),
        normalize_event({"action": "create", "alias": "x" * 600, "message": "m"}, 2),
    ]
    planned = plan(events, {}, PlanSpec("svc"), datetime(2026, 1, 1, tzinfo=UTC)).to_dict()
    report = limit_report(planned)
    assert sorted((r["seq"], r["field"]) for r in report) == [(0, "message"), (0, "tags"), (2, "alias")]
    message = next(r for r in report if r["field"] == "message")
    assert message == {
        "seq": 0,
        "field": "message",
        "detail": "200 -> 130 characters",
        "before": 200,
        "after": 130,
        "removed": 70,
    }
    assert next(r for r in report if r["field"] == "tags")["dropped"] == 5
    assert report[2]["before"] == len("svc:") + 600 and report[2]["after"] == 512
