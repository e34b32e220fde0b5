"""Per-target pause and circuit breaker, pure. A *target* is one base URL + API key: OpsGenie's rate limits are per
account / API key, and an outage is per endpoint, so every row of a target shares its fate.

* **429**: the whole target pauses until ``Retry-After`` (else ``X-RateLimit-Period-In-Sec``, else
  ``rate_limit_default``) has passed — in every worker process, because the pause lives in Postgres.
* **Circuit breaker**: after ``failures`` consecutive retryable failures (5xx but 501, timeouts, connection errors)
  the target is *down*. While it is down one row at a time is sent as a probe (every ``probe_base`` doubling up
  to ``probe_max`` seconds); the other rows wait without being tried. When a probe gets any real answer, the target
  is up again and every waiting row of it becomes due at once (the claim keeps per-alias order).

The store (``store/targets.py``) loads a ``TargetState``, applies ``after_response`` and writes the result.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

UP, DOWN = "up", "down"


def target_key(base_url: str, api_key: str) -> str:
    """The target's identity: SHA-256 of base URL and API key (the key itself is never stored or logged)."""
    return hashlib.sha256(f"{base_url.rstrip('/')}\n{api_key}".encode()).hexdigest()


@dataclass(frozen=True)
class CircuitPolicy:
    failures: int = 5  # consecutive retryable failures that take a target down
    probe_base: float = 1.0  # first probe this long after the target went down
    probe_max: float = 5.0  # longest wait between two probes
    rate_limit_default: float = 1.0  # a 429 that says nothing about how long to wait


class Signal(enum.StrEnum):
    OK = "ok"  # the target answered (any 2xx/3xx/4xx but 429, and 501): it is up
    FAILURE = "failure"  # 5xx (not 501), timeout, connection error
    RATE_LIMITED = "rate_limited"  # 429


def signal(http_status: int | None) -> Signal:
    """What one HTTP exchange says about the target (``None``: no response at all)."""
    if http_status is None:
        return Signal.FAILURE
    if http_status == 429:
        return Signal.RATE_LIMITED
    if 500 <= http_status < 600 and http_status != 501:
        return Signal.FAILURE
    return Signal.OK


@dataclass(frozen=True)
class TargetState:
    state: str = UP
    failures: int = 0
    probe_failures: int = 0
    paused_until: datetime | None = None
    down_since: datetime | None = None
    next_probe_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Transition:
    after: TargetState
    went_down: bool = False
    resumed: bool = False  # down -> up: make every waiting row of the target due now


def probe_delay(probe_failures: int, policy: CircuitPolicy) -> float:
    """Seconds from a failed probe (or going down, ``probe_failures == 0``) to the next probe."""
    return min(policy.probe_max, policy.probe_base * (2 ** max(0, probe_failures)))


def after_response(
    before: TargetState,
    sig: Signal,
    *,
    now: datetime,
    policy: CircuitPolicy,
    retry_after: float | None = None,
    probe: bool = False,
    error: str | None = None,
) -> Transition:
    """The target after one response (``probe``: the exchange was the down target's probe)."""
    if sig == Signal.OK:
        after = TargetState(UP, 0, 0, before.paused_until, None, None, None)
        return Transition(after, resumed=before.state == DOWN)
    if sig == Signal.RATE_LIMITED:
        wait = retry_after if retry_after is not None else policy.rate_limit_default
        until = now + timedelta(seconds=max(0.0, wait))
        if before.paused_until is not None and before.paused_until > until:
            until = before.paused_until
        # A 429 is an answer: the target is up (and paused). Waiting rows resume when the pause ends.
        after = TargetState(UP, 0, 0, until, None, None, error)
        return Transition(after, resumed=before.state == DOWN)
    failures = before.failures + 1
    if before.state == DOWN:
        if not probe:  # a send that was already under way when the target went down
            return Transition(replace(before, failures=failures, last_error=error or before.last_error))
        n = before.probe_failures + 1
        nxt = now + timedelta(seconds=probe_delay(n, policy))
        return Transition(replace(before, failures=failures, probe_failures=n, next_probe_at=nxt, last_error=error))
    if failures >= policy.failures:
        nxt = now + timedelta(seconds=probe_delay(0, policy))
        after = TargetState(DOWN, failures, 0, before.paused_until, now, nxt, error)
        return Transition(after, went_down=True)
    return Transition(replace(before, failures=failures, last_error=error))
