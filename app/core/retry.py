"""The retry policy, pure: an outcome kind + attempt + age -> seconds until the next attempt, or None (dead).

``max_age`` means what the docs say: a failing row is retried until it is that old. The last delay is shortened
so that one attempt happens right at ``max_age`` (an event is never given up early because the *next* delay would
have crossed the line); a failure at or after ``max_age`` is final. A 429's ``Retry-After`` is always honoured,
even when it ends after ``max_age``: that last attempt is late rather than early.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    max_age: float = 86400.0
    config_error_retry: float = 60.0
    config_error_max_age: float = 604800.0


def backoff(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Exponential backoff with jitter for the ``attempt``-th failure (1-based); ``rand`` in [0, 1).

    "Equal jitter": half the exponential delay is fixed, half random, so retries spread out but never
    come back immediately.
    """
    exp = min(policy.backoff_max, policy.backoff_base * (2 ** max(0, attempt - 1)))
    return exp / 2 + (exp / 2) * rand


def next_retry(
    kind: str,
    attempt: int,
    age: float,
    policy: RetryPolicy,
    *,
    retry_after: float | None = None,
    rand: float | None = None,
) -> float | None:
    """Seconds until the next attempt after an outcome of ``kind``, or None when the row is dead.

    ``age``: seconds since the row was queued. ``retry_after``: what the response asked for (429).
    """
    if kind == "retry":
        if age >= policy.max_age:
            return None
        if retry_after is not None:
            return max(retry_after, 0.0)  # what the API asked for, even past max_age (one last, late attempt)
        delay = backoff(attempt, policy, random.random() if rand is None else rand)
        return min(max(delay, 0.0), policy.max_age - age)
    if kind == "config_error":
        if age >= policy.config_error_max_age:
            return None
        return min(policy.config_error_retry, policy.config_error_max_age - age)
    if kind == "waiting":  # the alias's create is not processed by OpsGenie yet
        if age >= policy.max_age:
            return None  # waited as long as max_age allows: send anyway
        delay = min(0.25 * attempt, 5.0) if attempt > 0 else 0.25
        return min(delay, policy.max_age - age)
    return None  # delivered / rejected: no retry
