"""The retry policy is a pure function: outcome kind + attempt + age -> delay or dead."""

from __future__ import annotations

import pytest

from alertbridge.core.retry import RetryPolicy, backoff, next_retry

P = RetryPolicy(
    backoff_base=1.0, backoff_max=300.0, max_age=3600.0, config_error_retry=60.0, config_error_max_age=7200.0
)


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [(1, 0.0, 0.5), (1, 1.0, 1.0), (2, 0.0, 1.0), (3, 0.5, 3.0), (10, 0.0, 150.0), (10, 1.0, 300.0), (50, 0.0, 150.0)],
)
def test_backoff_is_exponential_with_jitter_and_capped(attempt: int, rand: float, expected: float) -> None:
    assert backoff(attempt, P, rand) == pytest.approx(expected)


TABLE = [
    # kind            attempt age      retry_after rand  expected
    ("delivered", 1, 0.0, None, 0.0, None),
    ("rejected", 1, 0.0, None, 0.0, None),
    ("retry", 1, 0.0, None, 0.0, 0.5),
    ("retry", 3, 0.0, None, 1.0, 4.0),
    ("retry", 1, 0.0, 7.0, 0.0, 7.0),  # 429 asks for 7 s
    ("retry", 1, 0.0, 900.0, 0.0, 900.0),  # honoured even above backoff_max
    # max_age is reached, not anticipated: the last delay is shortened so one attempt happens at max_age ...
    ("retry", 1, 3599.6, None, 1.0, 0.4),
    ("retry", 12, 3500.0, None, 0.0, 100.0),  # backoff would say 150 s: the last try is at 3600 s
    ("retry", 1, 3000.0, None, 0.0, 0.5),
    # ... and a failure at or past max_age is final
    ("retry", 1, 3600.0, None, 0.0, None),
    ("retry", 1, 3601.0, None, 0.0, None),
    ("retry", 1, 3599.0, 30.0, 0.0, 30.0),  # a 429's Retry-After is honoured even past max_age (late, not early)
    ("retry", 1, 3600.0, 30.0, 0.0, None),
    ("config_error", 1, 0.0, None, 0.0, 60.0),
    ("config_error", 40, 7150.0, None, 0.0, 50.0),  # config errors give up later than max_age, also at their age
    ("config_error", 40, 7200.0, None, 0.0, None),
    ("config_error", 40, 4000.0, None, 0.0, 60.0),
    ("waiting", 1, 3599.9, None, 0.0, 0.1),
    ("waiting", 1, 3600.0, None, 0.0, None),  # waited as long as max_age allows: send anyway
    ("waiting", 1, 0.0, None, 0.0, 0.25),
    ("waiting", 4, 0.0, None, 0.0, 1.0),
    ("waiting", 100, 0.0, None, 0.0, 5.0),
]


@pytest.mark.parametrize(("kind", "attempt", "age", "retry_after", "rand", "expected"), TABLE)
def test_next_retry(
    kind: str, attempt: int, age: float, retry_after: float | None, rand: float, expected: float | None
) -> None:
    got = next_retry(kind, attempt, age, P, retry_after=retry_after, rand=rand)
    assert got == (pytest.approx(expected) if expected is not None else None)
