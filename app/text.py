"""Cutting text to a number of characters without splitting what a reader sees as one character.

OpsGenie counts its limits in characters (code points), so the result is at most `limit` code points; the cut
falls on an extended grapheme cluster boundary (Unicode UAX #29, the `regex` module's ``\\X``): never between a
Hangul leading consonant and its vowel, inside a Devanagari conjunct, inside an emoji ZWJ sequence, between the
two halves of a flag, or before a combining mark. The field limits (app.limits) and the template filter
``truncate_chars`` (app.filters) both call `truncate_chars` here.

Pure. Base layer: imports nothing of ours.
"""

from __future__ import annotations

import regex

_CLUSTER = regex.compile(r"\X")


def _safe_start(text: str, cut: int) -> int:
    """A position <= `cut` that is surely a cluster boundary: between two ASCII characters other than CR LF (no
    UAX #29 rule joins those, and no rule looks back across them), else 0."""
    i = cut
    while i > 0:
        before, after = text[i - 1], text[i]
        if before < "\x80" and after < "\x80" and not (before == "\r" and after == "\n"):
            return i
        i -= 1
    return 0


def cluster_boundary(text: str, cut: int) -> int:
    """The last grapheme cluster boundary at or before `cut`."""
    if cut <= 0:
        return 0
    if cut >= len(text):
        return len(text)
    start = _safe_start(text, cut)
    boundary = start
    for match in _CLUSTER.finditer(text, start):
        if match.end() > cut:
            break
        boundary = match.end()
    return boundary


def truncate_chars(text: str, limit: int, end: str = "…") -> str:
    """`text` if it has at most `limit` characters, else a prefix ending on a cluster boundary followed by `end`,
    in at most `limit` characters in all. When `limit` leaves no room for `end`, the text is cut without it."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    if len(end) >= limit:
        return text[: cluster_boundary(text, limit)]
    return text[: cluster_boundary(text, limit - len(end))] + end
