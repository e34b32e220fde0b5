"""The limit report, pure: from a plan's events (``Plan.to_dict()``) to what was cut, field by field, and by how
many characters. The numbers come from the cut's own detail ("5000 -> 130 characters"; "dropped 5 tags ...")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_CHARS = re.compile(r"^(\d+) -> (\d+) characters")
_DROPPED = re.compile(r"^dropped (\d+) ")


def cut_numbers(detail: str) -> dict[str, int]:
    """``{"before": n, "after": m, "removed": n - m}`` for a shortened text, ``{"dropped": n}`` for items over
    a count limit, ``{}`` when the detail says neither."""
    m = _CHARS.match(detail)
    if m:
        before, after = int(m.group(1)), int(m.group(2))
        return {"before": before, "after": after, "removed": before - after}
    m = _DROPPED.match(detail)
    return {"dropped": int(m.group(1))} if m else {}


def limit_report(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cut of every event: the event's seq, the field, the detail and its numbers."""
    rows: list[dict[str, Any]] = []
    for event in events:
        for cut in event.get("cuts", ()):
            rows.append(
                {"seq": event["seq"], "field": cut["field"], "detail": cut["detail"], **cut_numbers(cut["detail"])}
            )
    return rows


def cut_fields(events: Sequence[dict[str, Any]]) -> set[tuple[int, str]]:
    return {(event["seq"], cut["field"]) for event in events for cut in event.get("cuts", ())}
