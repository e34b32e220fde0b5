"""app/limits.py: event rules, OpsGenie limits, text cleaning. Tables first, then fixtures end to end."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from alertbridge import filters, rendering
from alertbridge.limits import (
    ACTIONS,
    LIMITS,
    Cut,
    Defaults,
    Event,
    EventError,
    clean_alias,
    clean_text,
    fit_alias,
    normalize_event,
    truncate_chars,
)

FIXTURES = Path(__file__).parent / "fixtures"

FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 7 code points, one glyph
FLAG_EU = "\U0001f1ea\U0001f1fa"
FIRE = "\U0001f525"


def create(**fields: Any) -> dict[str, Any]:
    return {"action": "create", "alias": "a1", "message": "m", **fields}


def assert_within_limits(event: Event) -> None:
    fields = event.fields
    for name in ("message", "description", "entity", "source", "user", "note"):
        if name in fields:
            assert len(fields[name]) <= LIMITS[name], name
    assert len(fields.get("tags", [])) <= LIMITS["tags"]
    assert all(len(tag) <= LIMITS["tag_chars"] for tag in fields.get("tags", []))
    assert len(fields.get("actions", [])) <= LIMITS["actions"]
    assert all(len(action) <= LIMITS["action_chars"] for action in fields.get("actions", []))
    assert sum(len(k) + len(v) for k, v in fields.get("details", {}).items()) <= LIMITS["details"]
    assert len(fields.get("responders", [])) <= LIMITS["responders"]
    assert len(fields.get("visibleTo", [])) <= LIMITS["visibleTo"]
    for value in _strings(fields):
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# ---------------------------------------------------------------------------------------------------------
# normalize_event: accepted events


@pytest.mark.parametrize(
    ("raw", "action", "alias", "fields"),
    [
        (create(), "create", "a1", {"message": "m"}),
        # int alias -> str; alias cleaned of invisible characters and surrounding whitespace
        ({"action": "close", "alias": 42}, "close", "42", {}),
        ({"action": "close", "alias": " \u200bab\u202ec\n"}, "close", "abc", {}),
        # fields the action does not send are dropped silently
        (
            {**create(priority="P1", tags=["x"], note="n", user="u"), "action": "close"},
            "close",
            "a1",
            {"user": "u", "note": "n"},
        ),
        ({"action": "acknowledge", "alias": "a", "message": "m", "source": "s"}, "acknowledge", "a", {"source": "s"}),
        ({"action": "note", "alias": "a", "note": "hello", "tags": ["t"]}, "note", "a", {"note": "hello"}),
        ({"action": "ignore", "message": "m", "tags": ["t"]}, "ignore", "", {}),
        ({"action": "ignore", "alias": " x "}, "ignore", "x", {}),
        # null and empty mean absent
        (create(description=None, tags=[], details={}, entity="", priority=""), "create", "a1", {"message": "m"}),
        # priority is case-insensitive, normalized to upper case
        (create(priority=" p2 "), "create", "a1", {"message": "m", "priority": "P2"}),
        # scalars become text
        (create(message=3.5, entity=12, user=True), "create", "a1", {"message": "3.5", "entity": "12", "user": "true"}),
        # tags: scalars coerced, trimmed, empty and duplicate dropped, order kept
        (
            create(tags=["b", 1, "", None, " b ", False, "a"]),
            "create",
            "a1",
            {"message": "m", "tags": ["b", "1", "false", "a"]},
        ),
        (
            create(actions=["Restart", "Restart", "Silence"]),
            "create",
            "a1",
            {"message": "m", "actions": ["Restart", "Silence"]},
        ),
        # details: str kept, null dropped, others compact JSON
        (
            create(details={"s": "x", "n": None, "i": 5, "b": False, "l": [1, "a"], "o": {"k": "é"}}),
            "create",
            "a1",
            {"message": "m", "details": {"s": "x", "i": "5", "b": "false", "l": '[1,"a"]', "o": '{"k":"é"}'}},
        ),
        # responders/visibleTo: type normalized to lower case, empty names dropped
        (
            create(
                responders=[{"type": "Team", "name": "ops"}, {"type": "user", "username": "a@example.net", "id": ""}],
                visibleTo=[{"type": "team", "id": "t-1"}],
            ),
            "create",
            "a1",
            {
                "message": "m",
                "responders": [{"type": "team", "name": "ops"}, {"type": "user", "username": "a@example.net"}],
                "visibleTo": [{"type": "team", "id": "t-1"}],
            },
        ),
        # fields come out in OpsGenie's order, whatever the template's order
        (
            {"note": "n", "source": "s", "message": "m", "alias": "a", "action": "create"},
            "create",
            "a",
            {"message": "m", "source": "s", "note": "n"},
        ),
    ],
)
def test_normalize_event_accepts(raw: dict[str, Any], action: str, alias: str, fields: dict[str, Any]) -> None:
    event = normalize_event(raw)
    assert (event.action, event.alias, event.fields, event.cuts) == (action, alias, fields, ())
    assert list(event.fields) == list(fields)


def test_ignore_keeps_reason() -> None:
    assert normalize_event({"action": "ignore", "reason": "heartbeat"}).reason == "heartbeat"
    assert normalize_event({"action": "ignore"}).reason is None
    assert normalize_event({"action": "close", "alias": "a", "reason": "x"}).reason is None


# ---------------------------------------------------------------------------------------------------------
# normalize_event: refused events (message names the index and the field)


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ([], None, "event 3: must be a JSON object, got an array"),
        ("x", None, "event 3: must be a JSON object, got 'x'"),
        (
            {"alias": "a"},
            "action",
            "event 3: field 'action' is required (one of create, acknowledge, close, note, ignore)",
        ),
        (
            {"action": "Create", "alias": "a"},
            "action",
            "event 3: field 'action' must be one of create, acknowledge, close, note, ignore, got 'Create'",
        ),
        (
            {"action": 1, "alias": "a"},
            "action",
            "event 3: field 'action' must be one of create, acknowledge, close, note, ignore, got 1",
        ),
        ({"action": "close"}, "alias", "event 3: field 'alias' is required for action 'close'"),
        ({"action": "close", "alias": None}, "alias", "event 3: field 'alias' is required for action 'close'"),
        ({"action": "close", "alias": ""}, "alias", "event 3: field 'alias' must not be empty"),
        (
            {"action": "close", "alias": "\u200b\u202e"},
            "alias",
            "event 3: field 'alias' is empty after removing control and invisible characters",
        ),
        ({"action": "close", "alias": 1.5}, "alias", "event 3: field 'alias' must be a string, got 1.5"),
        ({"action": "close", "alias": True}, "alias", "event 3: field 'alias' must be a string, got true"),
        ({"action": "close", "alias": ["a"]}, "alias", "event 3: field 'alias' must be a string, got an array"),
        (
            create(status="firing"),
            "status",
            "event 3: field 'status' is not a known event field (allowed: action, "
            "alias, reason, started_at, message, description, responders, visibleTo, actions, tags, details, entity, source, "
            "priority, user, note)",
        ),
        (
            {"action": "create", "alias": "a"},
            "message",
            "event 3: field 'message' is required for action 'create' and must not be empty",
        ),
        (
            create(message="  "),
            "message",
            "event 3: field 'message' is required for action 'create' and must not be empty",
        ),
        (
            create(message="\x00"),
            "message",
            "event 3: field 'message' is required for action 'create' and must not be empty",
        ),
        (
            {"action": "note", "alias": "a"},
            "note",
            "event 3: field 'note' is required for action 'note' and must not be empty",
        ),
        (create(message={"a": 1}), "message", "event 3: field 'message' must be a string, got an object"),
        (create(description=["x"]), "description", "event 3: field 'description' must be a string, got an array"),
        (create(priority="high"), "priority", "event 3: field 'priority' must be one of P1..P5, got 'high'"),
        (create(priority=1), "priority", "event 3: field 'priority' must be one of P1..P5, got 1"),
        (create(tags="a,b"), "tags", "event 3: field 'tags' must be an array of strings, got 'a,b'"),
        (create(tags=["a", {"b": 1}]), "tags[1]", "event 3: field 'tags[1]' must be a string, got an object"),
        (create(actions={"a": 1}), "actions", "event 3: field 'actions' must be an array of strings, got an object"),
        (create(details=["a"]), "details", "event 3: field 'details' must be an object, got an array"),
        (
            create(responders={"type": "team"}),
            "responders",
            "event 3: field 'responders' must be an array of objects, got an object",
        ),
        (
            create(responders=["ops"]),
            "responders[0]",
            "event 3: field 'responders[0]' must be an object with 'type' and 'id' or 'name', got 'ops'",
        ),
        (
            create(responders=[{"name": "ops"}]),
            "responders[0].type",
            "event 3: field 'responders[0].type' must be one of team, user, escalation, schedule, got null",
        ),
        (
            create(responders=[{"type": "group", "name": "ops"}]),
            "responders[0].type",
            "event 3: field 'responders[0].type' must be one of team, user, escalation, schedule, got 'group'",
        ),
        (
            create(responders=[{"type": "team"}]),
            "responders[0]",
            "event 3: field 'responders[0]' needs 'id' or 'name' for type 'team'",
        ),
        (
            create(responders=[{"type": "user", "name": "Ann"}]),
            "responders[0]",
            "event 3: field 'responders[0]' needs 'id' or 'username' for type 'user'",
        ),
        (
            create(responders=[{"type": "team", "name": "ops", "x": 1}]),
            "responders[0]",
            "event 3: field 'responders[0]' has unknown key 'x' (allowed: type, id, name, username)",
        ),
        (
            create(visibleTo=[{"type": "schedule", "name": "s"}]),
            "visibleTo[0].type",
            "event 3: field 'visibleTo[0].type' must be one of team, user, got 'schedule'",
        ),
        (
            create(responders=[{"type": "team", "name": ["x"]}]),
            "responders[0].name",
            "event 3: field 'responders[0].name' must be a string, got an array",
        ),
    ],
)
def test_normalize_event_refuses(raw: Any, field: str | None, message: str) -> None:
    with pytest.raises(EventError) as caught:
        normalize_event(raw, index=3)
    assert (caught.value.index, caught.value.field, caught.value.message, str(caught.value)) == (
        3,
        field,
        message,
        message,
    )


def test_event_error_is_a_value_error_and_pickles() -> None:
    error = EventError(2, "priority", "must be one of P1..P5, got 'high'")
    assert isinstance(error, ValueError)
    assert error.to_dict() == {
        "index": 2,
        "field": "priority",
        "message": "event 2: field 'priority' must be one of P1..P5, got 'high'",
    }
    assert pickle.loads(pickle.dumps(error)).to_dict() == error.to_dict()


def test_bad_value_is_shown_short() -> None:
    with pytest.raises(EventError) as caught:
        normalize_event(create(priority="x" * 10_000))
    assert len(caught.value.message) < 120


# ---------------------------------------------------------------------------------------------------------
# Defaults


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (
            create(),
            {"message": "m", "responders": [{"type": "team", "name": "ops"}], "source": "bridge", "priority": "P4"},
        ),
        (
            create(responders=[{"type": "user", "id": "u1"}], priority="P1", source="am"),
            {"message": "m", "responders": [{"type": "user", "id": "u1"}], "source": "am", "priority": "P1"},
        ),
        (
            create(responders=[], priority=None, source=""),  # empty counts as "gave none"
            {"message": "m", "responders": [{"type": "team", "name": "ops"}], "source": "bridge", "priority": "P4"},
        ),
        ({"action": "close", "alias": "a"}, {"source": "bridge"}),
        ({"action": "note", "alias": "a", "note": "n"}, {"note": "n", "source": "bridge"}),
        ({"action": "ignore"}, {}),
    ],
)
def test_defaults_fill_what_the_template_leaves_out(raw: dict[str, Any], fields: dict[str, Any]) -> None:
    event = normalize_event(raw, defaults=Defaults(team="ops", priority="p4", source="bridge"))
    assert event.fields == {name: fields[name] for name in event.fields} and set(event.fields) == set(fields)


def test_default_priority_is_validated_and_default_source_is_limited() -> None:
    with pytest.raises(ValueError, match=r"default priority must be one of P1\.\.P5"):
        Defaults(priority="urgent")
    assert Defaults(priority=" p5 ").priority == "P5"
    event = normalize_event({"action": "close", "alias": "a"}, defaults=Defaults(source="s" * 150))
    assert event.fields == {"source": "s" * 99 + "…"}
    assert event.cuts == (Cut("source", "150 -> 100 characters"),)


# ---------------------------------------------------------------------------------------------------------
# Limits and the Cuts they record


@pytest.mark.parametrize(
    ("name", "limit"),
    [("message", 130), ("description", 15_000), ("entity", 512), ("source", 100), ("user", 100), ("note", 25_000)],
)
def test_text_fields_are_truncated_by_characters(name: str, limit: int) -> None:
    event = normalize_event(create(**{name: FIRE * (limit + 10)}))
    assert event.fields[name] == FIRE * (limit - 1) + "…"
    assert Cut(name, f"{limit + 10} -> {limit} characters") in event.cuts


def test_tags_over_length_and_count() -> None:
    tags = [f"t{i:02d}" for i in range(25)]
    tags[3] = "x" * 60
    event = normalize_event(create(tags=tags))
    assert len(event.fields["tags"]) == 20
    assert event.fields["tags"][3] == "x" * 49 + "…"
    assert event.cuts == (Cut("tags[3]", "60 -> 50 characters"), Cut("tags", "dropped 5 tags over the limit of 20"))


def test_tags_equal_after_truncation_are_deduplicated() -> None:
    event = normalize_event(create(tags=["y" * 49 + "a" * 5, "y" * 49 + "b" * 5]))
    assert event.fields["tags"] == ["y" * 49 + "…"]


def test_actions_over_length_and_count() -> None:
    event = normalize_event(create(actions=[f"action {i}" for i in range(12)] + ["z" * 80]))
    assert event.fields["actions"] == [f"action {i}" for i in range(10)]
    assert event.cuts == (
        Cut("actions[12]", "80 -> 50 characters"),
        Cut("actions", "dropped 3 actions over the limit of 10"),
    )


def test_details_total_limit_cuts_the_crossing_value_and_drops_the_rest() -> None:
    details = {"a": "1" * 3000, "b": "2" * 3000, "c": "3" * 3000, "d": "4", "e": "5"}
    event = normalize_event(create(details=details))
    kept = event.fields["details"]
    assert list(kept) == ["a", "b", "c"]
    assert kept["c"] == "3" * 1996 + "…"  # 8000 - 2 x (1 + 3000) - len("c") = 1997 characters
    assert sum(len(k) + len(v) for k, v in kept.items()) == 8000
    assert event.cuts == (
        Cut("details.c", "3000 -> 1997 characters"),
        Cut("details", "dropped details keys over the 8000-character limit: d, e"),
    )


def test_details_key_that_does_not_fit_is_dropped() -> None:
    event = normalize_event(create(details={"a": "1" * 7990, "k" * 20: "v"}))
    assert list(event.fields["details"]) == ["a"]
    assert event.cuts == (Cut("details", "dropped details keys over the 8000-character limit: " + "k" * 20),)


def test_details_dropped_key_list_is_short() -> None:
    event = normalize_event(create(details={"big": "x" * 8000, **{f"k{i}": "v" for i in range(100)}}))
    (cut,) = [c for c in event.cuts if c.field == "details"]
    assert cut.detail.endswith("k19 and 80 more") and len(cut.detail) < 300


@pytest.mark.parametrize("name", ["responders", "visibleTo"])
def test_recipients_over_50_are_dropped(name: str) -> None:
    event = normalize_event(create(**{name: [{"type": "team", "name": f"t{i}"} for i in range(53)]}))
    assert len(event.fields[name]) == 50
    assert event.cuts == (Cut(name, f"dropped 3 {name} entries over the limit of 50"),)


def test_cut_to_dict() -> None:
    cut = Cut("message", "5000 -> 130 characters")
    assert cut.to_dict() == {"field": "message", "detail": "5000 -> 130 characters"}


def test_alias_is_not_limited_here() -> None:
    assert normalize_event({"action": "close", "alias": "a" * 2000}).alias == "a" * 2000


# ---------------------------------------------------------------------------------------------------------
# Text: truncation, cleaning, alias fitting


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("abcdefghijk", 10, "abcdefghi…"),
        (FIRE * 200, 130, FIRE * 129 + "…"),  # an emoji is one character
        ("ab" + FAMILY, 9, "ab" + FAMILY),  # fits: untouched
        ("ab" + FAMILY + "c", 9, "ab…"),  # never half a ZWJ sequence
        ("ab" + FAMILY + "c", 7, "ab…"),
        (FLAG_EU * 3, 4, FLAG_EU + "…"),  # a flag is two regional indicators: never split
        (FLAG_EU * 3, 5, FLAG_EU * 2 + "…"),
        ("e\u0301" * 5, 4, "e\u0301…"),  # never a base without its combining mark
        ("Z\u0353\u0351\u0352a\u0354\u0355lgo", 4, "…"),  # a cluster that does not fit is left out whole
        ("\u263a\ufe0f" * 3, 4, "\u263a\ufe0f…"),  # variation selector stays with its base
        ("\U0001f44d\U0001f3fd" * 3, 4, "\U0001f44d\U0001f3fd…"),  # skin tone stays with its base
        ("تأخير الدفع مرتفع جدا", 10, "تأخير الد…"),  # RTL text: by characters, logical order
        ("שירות התשלומים", 6, "שירות…"),
        ("abc", 1, "a"),  # no room for the marker
        ("abc", 0, ""),
        ("abcdef", 4, "abc…"),
    ],
)
def test_truncate_chars(text: str, limit: int, expected: str) -> None:
    result = truncate_chars(text, limit)
    assert result == expected
    assert len(result) <= limit
    # the template filter is a copy (base-layer modules import nothing of ours): both must agree
    assert filters.truncate_chars(text, limit) == result


def test_truncate_chars_custom_end() -> None:
    assert truncate_chars("abcdefgh", 6, end=" [...]") == "abcdef"  # the marker does not fit: plain cut
    assert truncate_chars("abcdefghijkl", 9, end="[..]") == "abcde[..]"
    assert filters.truncate_chars("abcdefghijkl", 9, end="[..]") == "abcde[..]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("before\x00after", "beforeafter"),
        ("lone \ud800 high", "lone \ufffd high"),
        ("lone \udfff low", "lone \ufffd low"),
        ("pair \ud83d\udd25 as two surrogates", "pair \ufffd\ufffd as two surrogates"),
        ("keep \u202e bidi and \u200b zw", "keep \u202e bidi and \u200b zw"),
        (FAMILY, FAMILY),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert clean_text(text) == expected
    clean_text(text).encode("utf-8")


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("  fp-1  ", "fp-1"),
        ("a\x00b\x1bc\x7fd\x85e", "abcde"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("\u200epay\u200fments\u2066\u2069\u061c", "payments"),
        ("pay\u200bme\u200cn\u200dts\u2060\ufeff", "payments"),
        ("a\u2028b\u2029c", "abc"),
        ("\ud800x", "\ufffdx"),
        ("תשלומים 🔥", "תשלומים 🔥"),
        ("\u200b", ""),
    ],
)
def test_clean_alias(alias: str, expected: str) -> None:
    assert clean_alias(alias) == expected


def test_fit_alias_short_is_untouched() -> None:
    assert fit_alias("x" * 512) == ("x" * 512, None)


def test_fit_alias_is_stable_unique_and_within_limit() -> None:
    a, b = "p" * 600 + "a", "p" * 600 + "b"
    fitted_a, cut = fit_alias(a)
    assert len(fitted_a) == 512
    assert fitted_a.startswith("p" * 495) and fitted_a[495] == "~" and len(fitted_a[496:]) == 16
    assert fit_alias(a) == (fitted_a, cut)  # stable
    assert fit_alias(b)[0] != fitted_a  # same prefix, still distinct
    assert cut == Cut("alias", "601 -> 512 characters (prefix + '~' + sha256 prefix)")
    assert len(fit_alias("é" * 300, limit=100)[0]) == 100
    assert len(fit_alias("\ud800" * 600)[0]) == 512  # hashing never fails on odd text


def test_actions_constant() -> None:
    assert ACTIONS == ("create", "acknowledge", "close", "note", "ignore")


# ---------------------------------------------------------------------------------------------------------
# Hostile fixtures through the built-in alertmanager template


def _events(fixture: str) -> list[Event]:
    name, source = rendering.load_template_source("alertmanager")
    template = rendering.compile_template(source, name)
    payload = json.loads((FIXTURES / "hostile" / fixture).read_bytes())
    raw = rendering.render(template, {"payload": payload, "headers": {}, "query": {}, "integration": "am"})
    return [normalize_event(item, i) for i, item in enumerate(raw)]


def test_long_message_fixture_fits_every_limit() -> None:
    first, second = _events("long_message_5000.json")
    for event in (first, second):
        assert_within_limits(event)
    assert len(first.fields["message"]) == 130 and first.fields["message"].endswith("…")
    assert len(first.fields["description"]) == 15_000
    assert {c.field for c in first.cuts} >= {"message", "description", "tags[0]", "details.blob", "details"}
    assert second.cuts == ()


def test_unicode_fixture_fits_every_limit_and_keeps_text() -> None:
    first, second = _events("unicode_emoji_rtl.json")
    for event in (first, second):
        assert_within_limits(event)
    assert first.fields["message"].startswith(FIRE * 64 + FAMILY + FLAG_EU)
    assert first.fields["details"]["nul_inside"] == "beforeafter"
    assert first.fields["details"]["alertname"] == "تأخير الدفع مرتفع"
    assert "alertname:تأخير الدفع مرتفع" in first.fields["tags"]
    assert first.alias == "f8f9add23ebfa2db"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-09-14T08:11:32.481Z", "2026-09-14T08:11:32.481000+00:00"),
        ("2026-09-14T10:11:32+02:00", "2026-09-14T08:11:32+00:00"),
        ("2026-09-14T08:11:32", "2026-09-14T08:11:32+00:00"),
        (1789373492, "2026-09-14T08:11:32+00:00"),
        (None, None),
        ("", None),
    ],
)
def test_started_at_is_metadata_never_sent(value: Any, expected: str | None) -> None:
    event = normalize_event({"action": "create", "alias": "a", "message": "m", "started_at": value})
    assert (event.started_at.isoformat() if event.started_at else None) == expected
    assert "started_at" not in event.fields


def test_started_at_must_be_a_time() -> None:
    with pytest.raises(EventError, match="started_at"):
        normalize_event({"action": "create", "alias": "a", "message": "m", "started_at": "yesterday"})
