"""OpsGenie alert fields: check a rendered event, apply defaults, fit it into the API's limits.

A payload template renders plain JSON objects ("raw events"). `normalize_event` turns one of them into an
`Event`: a known action, a cleaned alias, and only the OpsGenie body fields that action accepts, each within
the documented limits (CONTRACT.md §1). What had to be shortened or dropped is reported as `Cut`s, never
silently. Lengths are counted in characters (code points), never bytes, as OpsGenie and Alertmanager do; a cut
never splits a grapheme cluster (app.text).

Pure functions, no I/O. Base layer: imports only app.text (truncation on grapheme clusters).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alertbridge.text import truncate_chars

ACTIONS = ("create", "acknowledge", "close", "note", "ignore")

#: OpsGenie Alert API v2 limits. Strings are in characters; "tags"/"actions"/"responders"/"visibleTo" are item
#: counts, "tag_chars"/"action_chars" the length of one item, "details" the total of all keys and values.
LIMITS: dict[str, int] = {
    "message": 130,
    "alias": 512,
    "description": 15_000,
    "entity": 512,
    "source": 100,
    "user": 100,
    "note": 25_000,
    "tags": 20,
    "tag_chars": 50,
    "actions": 10,
    "action_chars": 50,
    "details": 8_000,
    "responders": 50,
    "visibleTo": 50,
}

OPSGENIE_FIELDS = (
    "message",
    "description",
    "responders",
    "visibleTo",
    "actions",
    "tags",
    "details",
    "entity",
    "source",
    "priority",
    "user",
    "note",
)
#: The body fields each action sends; other OpsGenie fields are dropped silently, so one template object
#: can serve both create and close.
FIELDS_BY_ACTION: dict[str, tuple[str, ...]] = {
    "create": OPSGENIE_FIELDS,
    "acknowledge": ("user", "source", "note"),
    "close": ("user", "source", "note"),
    "note": ("note", "user", "source"),
    "ignore": (),
}
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
RECIPIENT_TYPES = {"responders": ("team", "user", "escalation", "schedule"), "visibleTo": ("team", "user")}
_TEXT_FIELDS = ("message", "description", "entity", "source", "user", "note")
#: Event keys that are about the bridge, not sent to OpsGenie: "started_at" is when the source says the problem
#: began (ISO 8601, or epoch seconds); the audit views measure time to acknowledge/close from it too.
_META_KEYS = ("reason", "started_at")
_EVENT_KEYS = frozenset(("action", "alias", *_META_KEYS, *OPSGENIE_FIELDS))


@dataclass(frozen=True)
class Cut:
    """One change made to fit a limit: which field, and what happened to it."""

    field: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "detail": self.detail}


#: The `user` of every request the bridge sends when the template names none: OpsGenie shows it as the request's
#: owner, and a callback that names it is recognised as the echo of our own request.
BRIDGE_USER = "alertbridge"


@dataclass(frozen=True)
class Defaults:
    """Per-integration defaults, used only where the template gives nothing (null, "" or an empty list)."""

    team: str | None = None  # create: responders = [{"type": "team", "name": team}]
    priority: str | None = None  # create
    source: str | None = None  # every action except ignore
    user: str | None = None  # every action except ignore: who OpsGenie shows as the request's owner

    def __post_init__(self) -> None:
        if self.priority:
            priority = str(self.priority).strip().upper()
            if priority not in PRIORITIES:
                raise ValueError(f"default priority must be one of P1..P5, got {self.priority!r}")
            object.__setattr__(self, "priority", priority)


@dataclass(frozen=True)
class Event:
    action: str
    alias: str  # cleaned, not yet scoped or fitted (see fit_alias); "" only for ignore events
    fields: dict[str, Any]  # OpsGenie body fields for this action, in OPSGENIE_FIELDS order
    cuts: tuple[Cut, ...]
    reason: str | None = None  # ignore events: the template's "reason"
    started_at: datetime | None = None  # when the source says the problem began (UTC)


class EventError(ValueError):
    """A rendered event the bridge cannot send. The message names the event index and the field."""

    def __init__(self, index: int, field: str | None, text: str) -> None:
        self.index = index
        self.field = field
        self.text = text  # the message without the "event N: field 'x'" prefix
        self.message = f"event {index}: field {field!r} {text}" if field else f"event {index}: {text}"
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.index, self.field, self.text))

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


# ---------------------------------------------------------------------------------------------------------
# Text helpers

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0/C1 controls, bidi controls (incl. U+061C), zero-width and invisible characters, line/paragraph separators.
_ALIAS_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def clean_text(text: str) -> str:
    """Drop NUL and replace lone surrogates with U+FFFD: Postgres text/jsonb refuse both."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def clean_alias(alias: str) -> str:
    """`clean_text`, minus control, bidi and zero-width characters, minus surrounding whitespace."""
    return _ALIAS_INVISIBLE.sub("", clean_text(alias)).strip()


def fit_alias(alias: str, limit: int = LIMITS["alias"]) -> tuple[str, Cut | None]:
    """Fit an alias into `limit` characters. A longer alias keeps a prefix and ends with "~" plus the first
    16 hex digits of its sha256, so distinct long aliases stay distinct and the result is stable."""
    if len(alias) <= limit:
        return alias, None
    suffix = "~" + hashlib.sha256(alias.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    fitted = alias[: max(0, limit - len(suffix))] + suffix[:limit]
    return fitted, Cut("alias", f"{len(alias)} -> {len(fitted)} characters (prefix + '~' + sha256 prefix)")


# ---------------------------------------------------------------------------------------------------------
# Parsing one event


def _show(value: Any) -> str:
    """A short description of a bad value for an error message (never the whole value)."""
    if isinstance(value, str):
        return repr(truncate_chars(value, 40))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return truncate_chars(repr(value), 40)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


def _text(value: Any, field: str, index: int) -> str:
    """A string field: str as is, numbers and booleans as their JSON text; objects and arrays are errors."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        try:
            return repr(value)
        except ValueError:  # int beyond the 4300-digit str() limit
            raise EventError(index, field, "is a number too large to convert to text") from None
    raise EventError(index, field, f"must be a string, got {_show(value)}")


def _action(value: Any, index: int) -> str:
    if value is None:
        raise EventError(index, "action", f"is required (one of {', '.join(ACTIONS)})")
    if not isinstance(value, str) or value not in ACTIONS:
        raise EventError(index, "action", f"must be one of {', '.join(ACTIONS)}, got {_show(value)}")
    return value


def _alias(value: Any, action: str, index: int) -> str:
    if value is None:
        if action == "ignore":
            return ""
        raise EventError(index, "alias", f"is required for action {action!r}")
    if isinstance(value, int) and not isinstance(value, bool):
        value = _text(value, "alias", index)
    if not isinstance(value, str):
        raise EventError(index, "alias", f"must be a string, got {_show(value)}")
    alias = clean_alias(value)
    if not alias and action != "ignore":
        what = "must not be empty" if not value.strip() else "is empty after removing control and invisible characters"
        raise EventError(index, "alias", what)
    return alias


def _priority(value: Any, index: int) -> str:
    priority = _text(value, "priority", index).strip().upper()
    if priority and priority not in PRIORITIES:
        raise EventError(index, "priority", f"must be one of P1..P5, got {_show(value)}")
    return priority


def _string_list(value: Any, field: str, index: int, cuts: list[Cut]) -> list[str]:
    """tags / actions: strings (scalars coerced), trimmed, empties and duplicates dropped, then limited."""
    if not isinstance(value, list):
        raise EventError(index, field, f"must be an array of strings, got {_show(value)}")
    max_items, max_chars = LIMITS[field], LIMITS[field[:-1] + "_chars"]
    items: list[str] = []
    for position, item in enumerate(value):
        if item is None:
            continue
        text = _text(item, f"{field}[{position}]", index).strip()
        if len(text) > max_chars:
            short = truncate_chars(text, max_chars)
            cuts.append(Cut(f"{field}[{position}]", f"{len(text)} -> {len(short)} characters"))
            text = short
        if text and text not in items:
            items.append(text)
    if len(items) > max_items:
        cuts.append(Cut(field, f"dropped {len(items) - max_items} {field} over the limit of {max_items}"))
        del items[max_items:]
    return items


def _detail_value(value: Any, key: str, index: int) -> str:
    if isinstance(value, str):
        return clean_text(value)
    try:
        return clean_text(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        raise EventError(index, f"details.{key}", f"cannot be written as text, got {_show(value)}") from None


def _names(keys: list[str], shown: int = 20) -> str:
    names = ", ".join(truncate_chars(key, 50) for key in keys[:shown])
    return names + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _details(value: Any, index: int, cuts: list[Cut]) -> dict[str, str]:
    """details: string keys and values (other values become compact JSON text), 8000 characters in total.

    Entries are kept in order while they fit; the value that crosses the limit is shortened, the rest dropped.
    """
    if not isinstance(value, dict):
        raise EventError(index, "details", f"must be an object, got {_show(value)}")
    limit, total, full = LIMITS["details"], 0, False
    details: dict[str, str] = {}
    dropped: list[str] = []
    for raw_key, raw_value in value.items():
        if raw_value is None:
            continue
        key = clean_text(str(raw_key))
        text = _detail_value(raw_value, key, index)
        if full:
            dropped.append(key)
        elif total + len(key) + len(text) <= limit:
            details[key] = text
            total += len(key) + len(text)
        else:  # this entry crosses the limit: shorten its value if its key fits, then stop keeping entries
            full = True
            room = limit - total - len(key)
            if room > 0:
                details[key] = truncate_chars(text, room)
                cuts.append(Cut(f"details.{key}", f"{len(text)} -> {len(details[key])} characters"))
            else:
                dropped.append(key)
    if dropped:
        cuts.append(Cut("details", f"dropped details keys over the {limit}-character limit: {_names(dropped)}"))
    return details


def _recipients(value: Any, field: str, index: int, cuts: list[Cut]) -> list[dict[str, str]]:
    """responders / visibleTo: objects with a type and an id, name (teams etc.) or username (users)."""
    types = RECIPIENT_TYPES[field]
    if not isinstance(value, list):
        raise EventError(index, field, f"must be an array of objects, got {_show(value)}")
    recipients: list[dict[str, str]] = []
    for position, item in enumerate(value):
        where = f"{field}[{position}]"
        if item is None:
            continue
        if not isinstance(item, dict):
            raise EventError(index, where, f"must be an object with 'type' and 'id' or 'name', got {_show(item)}")
        for key in item:
            if key not in ("type", "id", "name", "username"):
                raise EventError(index, where, f"has unknown key {str(key)!r} (allowed: type, id, name, username)")
        kind = item.get("type")
        if not isinstance(kind, str) or kind.strip().lower() not in types:
            raise EventError(index, f"{where}.type", f"must be one of {', '.join(types)}, got {_show(kind)}")
        recipient = {"type": kind.strip().lower()}
        for key in ("id", "name", "username"):
            if item.get(key) is not None:
                text = _text(item[key], f"{where}.{key}", index).strip()
                if text:
                    recipient[key] = text
        needs = ("id", "username") if recipient["type"] == "user" else ("id", "name")
        if not any(key in recipient for key in needs):
            raise EventError(index, where, f"needs {needs[0]!r} or {needs[1]!r} for type {recipient['type']!r}")
        recipients.append(recipient)
    limit = LIMITS[field]
    if len(recipients) > limit:
        cuts.append(Cut(field, f"dropped {len(recipients) - limit} {field} entries over the limit of {limit}"))
        del recipients[limit:]
    return recipients


def _field(name: str, value: Any, index: int, cuts: list[Cut]) -> Any:
    if name in ("tags", "actions"):
        return _string_list(value, name, index, cuts)
    if name == "details":
        return _details(value, index, cuts)
    if name in RECIPIENT_TYPES:
        return _recipients(value, name, index, cuts)
    if name == "priority":
        return _priority(value, index)
    return _text(value, name, index)


def normalize_event(raw: Any, index: int = 0, defaults: Defaults = Defaults()) -> Event:
    """Check one rendered event, keep the fields its action sends, apply `defaults`, then fit the limits.

    Raises EventError for anything OpsGenie would refuse or the bridge cannot interpret. The alias is
    cleaned but not length-limited: the caller scopes it (e.g. per integration), then calls `fit_alias`.
    """
    if not isinstance(raw, dict):
        raise EventError(index, None, f"must be a JSON object, got {_show(raw)}")
    for key in raw:
        if key not in _EVENT_KEYS:
            allowed = ", ".join(("action", "alias", *_META_KEYS, *OPSGENIE_FIELDS))
            raise EventError(index, str(key), f"is not a known event field (allowed: {allowed})")
    action = _action(raw.get("action"), index)
    alias = _alias(raw.get("alias"), action, index)
    reason = None
    if action == "ignore" and raw.get("reason") is not None:
        reason = _text(raw["reason"], "reason", index) or None

    cuts: list[Cut] = []
    fields: dict[str, Any] = {}
    for name in FIELDS_BY_ACTION[action]:
        if raw.get(name) is not None:
            value = _field(name, raw[name], index, cuts)
            if value:  # "", [] and {} mean "absent", like null
                fields[name] = value

    if action == "create" and not fields.get("message", "").strip():
        raise EventError(index, "message", "is required for action 'create' and must not be empty")
    if action == "note" and not fields.get("note", "").strip():
        raise EventError(index, "note", "is required for action 'note' and must not be empty")

    if action == "create":
        if "responders" not in fields and defaults.team:
            fields["responders"] = [{"type": "team", "name": clean_text(defaults.team)}]
        if "priority" not in fields and defaults.priority:
            fields["priority"] = defaults.priority
    if action != "ignore" and "source" not in fields and defaults.source:
        fields["source"] = clean_text(defaults.source)
    if action != "ignore" and "user" not in fields and defaults.user:
        fields["user"] = clean_text(defaults.user)

    for name in _TEXT_FIELDS:
        if name in fields and len(fields[name]) > LIMITS[name]:
            short = truncate_chars(fields[name], LIMITS[name])
            cuts.append(Cut(name, f"{len(fields[name])} -> {len(short)} characters"))
            fields[name] = short

    ordered = {name: fields[name] for name in OPSGENIE_FIELDS if name in fields}
    started_at = _started_at(raw.get("started_at"), index)
    return Event(action=action, alias=alias, fields=ordered, cuts=tuple(cuts), reason=reason, started_at=started_at)


def _started_at(value: Any, index: int) -> datetime | None:
    """ "started_at": an ISO 8601 time (a zone-less one is UTC) or epoch seconds; null/"" is absent."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise EventError(index, "started_at", f"must be an ISO 8601 time or epoch seconds, got {_show(value)}")
