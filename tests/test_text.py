"""Truncation on extended grapheme clusters (UAX #29), in one place (app.text) for the field limits and the
template filter alike."""

from __future__ import annotations

import pytest
import regex

from alertbridge import filters, limits, text
from alertbridge.limits import normalize_event
from alertbridge.text import cluster_boundary, truncate_chars

GAN = "\u1100\u1161\u11ab"  # 간 as conjoining jamo: leading consonant, vowel, trailing consonant (one cluster)
KSHA = "\u0915\u094d\u0937"  # क्ष: ka + virama + ssa, a Devanagari conjunct (one cluster)
NAMASTE = "\u0928\u092e\u0938\u094d\u0924\u0947"  # नमस्ते: न, म, स्ते
CODER = "\U0001f469\U0001f3fd\u200d\U0001f4bb"  # woman technologist, medium skin tone: ZWJ sequence
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
FLAG_EU = "\U0001f1ea\U0001f1fa"
FLAG_DE = "\U0001f1e9\U0001f1ea"
SCOTLAND = "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # a tag sequence

CASES = [
    # Hangul syllables written as jamo: never a consonant without its vowel
    (GAN * 5, 9, GAN * 2 + "…"),
    (GAN * 5, 10, GAN * 3 + "…"),
    (GAN * 5, 4, GAN + "…"),
    (GAN * 5, 3, "…"),
    (GAN * 5, 1, ""),  # no room for the marker: whole clusters only, here none
    # Devanagari conjuncts stay whole (virama + consonant)
    (KSHA + "\u0924\u094d\u0930\u093f\u092f", 3, "…"),
    (KSHA + "\u0924\u094d\u0930\u093f\u092f", 4, KSHA + "…"),
    (NAMASTE + " ji", 5, "\u0928\u092e…"),
    (NAMASTE + " ji", 7, NAMASTE + "…"),
    # emoji ZWJ sequences, skin tones, tag sequences
    ("ab" + CODER + "cd", 6, "ab…"),
    ("ab" + CODER + "cd", 7, "ab" + CODER + "…"),
    ("ab" + FAMILY + "c", 9, "ab…"),
    ("a" + SCOTLAND + "bc", 8, "a…"),
    ("a" + SCOTLAND + "bc", 9, "a" + SCOTLAND + "…"),
    # flags: pairs of regional indicators
    (FLAG_EU + FLAG_DE + FLAG_EU, 4, FLAG_EU + "…"),
    (FLAG_EU + FLAG_DE + FLAG_EU, 5, FLAG_EU + FLAG_DE + "…"),
    (FLAG_EU + FLAG_DE + FLAG_EU, 3, FLAG_EU + "…"),
    (FLAG_EU + FLAG_DE + FLAG_EU, 1, ""),
    # CR LF is one cluster
    ("ab\r\ncd", 4, "ab…"),
    # plain text and the fast path
    ("abcdefghijk", 10, "abcdefghi…"),
    ("x" * 5000 + "e\u0301" * 3, 5002, "x" * 5000 + "…"),
    ("x" * 5000 + "e\u0301" * 3, 5003, "x" * 5000 + "e\u0301…"),
]


@pytest.mark.parametrize(("value", "limit", "expected"), CASES)
def test_truncate_on_grapheme_clusters(value: str, limit: int, expected: str) -> None:
    result = truncate_chars(value, limit)
    assert result == expected
    assert len(result) <= limit
    # the field limits and the template filter are the same function
    assert limits.truncate_chars(value, limit) == result
    assert filters.truncate_chars(value, limit) == result


SAMPLES = [GAN * 7, KSHA * 5 + NAMASTE, CODER * 4, FLAG_EU * 5, "a\u0301b\u0302" * 6, "x\r\ny" * 5, "a" + SCOTLAND * 3]


@pytest.mark.parametrize("value", SAMPLES)
def test_every_cut_is_a_whole_number_of_clusters(value: str) -> None:
    clusters = regex.findall(r"\X", value)
    prefixes = {"".join(clusters[:k]) for k in range(len(clusters) + 1)}
    for cut in range(len(value) + 2):
        boundary = cluster_boundary(value, cut)
        assert value[:boundary] in prefixes and boundary <= max(cut, 0)
        # ...and the longest such prefix
        assert not any(len(p) > boundary and len(p) <= cut for p in prefixes)


def test_the_field_limits_cut_messages_on_clusters() -> None:
    event = normalize_event({"action": "create", "alias": "a", "message": GAN * 50})
    message = event.fields["message"]
    assert message == GAN * 43 + "…"  # 129 characters of room: 43 whole syllables (129), the marker would not fit
    assert [c.field for c in event.cuts] == ["message"]


def test_one_implementation() -> None:
    """The two copies (limits, filters) are gone: both use app.text."""
    assert limits.truncate_chars is text.truncate_chars
    assert not hasattr(limits, "_cluster_boundary") and not hasattr(filters, "_cluster_boundary")
