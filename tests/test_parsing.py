"""Untrusted bodies: every bad input gets a 400 message that says what is wrong; none raises anything else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from alertbridge import redact
from alertbridge.parsing import BodyError, parse_json_object

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
sys.path.insert(0, str(HOSTILE))


BAD = [
    (b"", "body is empty"),
    (b"  \n\t ", "body is empty"),
    (b'{"a": 1,, }', "not valid JSON"),
    (b'{"a": 1', "not valid JSON"),
    (b"[1, 2]", "got an array"),
    (b'"hello"', "got a string"),
    (b"null", "got null"),
    (b"42", "got a number"),
    (b"true", "got a boolean"),
    (b'{"a": NaN}', "NaN is not valid JSON"),
    (b'{"a": Infinity}', "Infinity is not valid JSON"),
    (b'{"a": 1e400}', "out of range"),
    (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
    (b'{"a": "caf\xe9"}', "not valid UTF-8 (byte 0xe9 at offset 10)"),
    (b"receiver=x&status=firing", "not valid JSON"),
    (b'{"a":' * 70 + b"1" + b"}" * 70, "deeper than 64 levels"),
    (b"[" * 10000 + b"]" * 10000, "deeper than"),
    (b'{"a":' * 10000 + b"1" + b"}" * 10000, "deeper than"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_bodies(body: bytes, message: str) -> None:
    with pytest.raises(BodyError) as info:
        parse_json_object(body)
    assert message in info.value.message


def test_form_encoded_gets_a_hint() -> None:
    with pytest.raises(BodyError, match="form-encoded"):
        parse_json_object(b"a=1&b=2", content_type="application/x-www-form-urlencoded")


def test_bom_is_accepted() -> None:
    assert parse_json_object(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_depth_limit_is_configurable() -> None:
    body = b'{"a":' * 10 + b"1" + b"}" * 10
    assert parse_json_object(body, max_depth=10)
    with pytest.raises(BodyError):
        parse_json_object(body, max_depth=9)


@pytest.mark.parametrize(
    "name",
    [
        "malformed.json",
        "truncated.json",
        "empty_body.json",
        "whitespace_only_body.json",
        "form_encoded_body.txt",
        "invalid_utf8.json",
        "top_level_array.json",
        "top_level_null.json",
        "top_level_string.json",
    ],
)
def test_hostile_fixtures_are_refused(name: str) -> None:
    with pytest.raises(BodyError):
        parse_json_object((HOSTILE / name).read_bytes())


def test_generated_deep_bodies_are_refused() -> None:
    import make  # type: ignore[import-not-found]

    for fn in ("deep_array_body", "deep_object_body", "deep_in_labels_body"):
        with pytest.raises(BodyError, match="deeper than"):
            parse_json_object(getattr(make, fn)())


def test_redaction_of_headers_and_query() -> None:
    h = redact.headers(
        [
            ("Authorization", "Bearer s3cret"),
            ("X-Bridge-Token", "abc"),
            ("Cookie", "a=b"),
            ("X-Api-Key", "k"),
            ("Content-Type", "application/json"),
            ("traceparent", "00-x"),
            ("X-Thing", "a\x00b"),
        ]
    )
    assert h == {
        "authorization": "[redacted]",
        "x-bridge-token": "[redacted]",
        "cookie": "[redacted]",
        "x-api-key": "[redacted]",
        "content-type": "application/json",
        "traceparent": "00-x",
        "x-thing": "ab",
    }
    assert redact.query([("token", "s3cret"), ("apiKey", "k"), ("region", "eu")]) == {
        "token": "[redacted]",
        "apiKey": "[redacted]",
        "region": "eu",
    }
