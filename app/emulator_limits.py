"""Two parts of the OpsGenie emulator (app/emulator.py) kept apart: the Heartbeat API's ping (CONTRACT §6) and an
account rate limit the emulator can enforce on the Alert API (CONTRACT §2: a token bucket; 429 with
``X-RateLimit-State: THROTTLED``, ``X-RateLimit-Reason: ACCOUNT`` and ``X-RateLimit-Period-In-Sec`` when exceeded).

    GET|POST|PUT|PATCH {p}/v2/heartbeats/{name}/ping     202 {"result": "PONG - Heartbeat received", ...}
    POST /_control/ratelimit  {"per_minute": 600, "burst": 50}    enforce (null / {} / DELETE: stop enforcing;
                              "period": 1 makes a 429 name the per-second bucket instead of the per-minute one)
    GET  /_control/ratelimit                                      the limit and what it counted
    GET  /_control/heartbeats                                     every ping, by heartbeat name

Like OpsGenie, a ping is accepted whether the heartbeat exists or not, and pings have a rate-limit domain of their
own (they never count against the Alert API's bucket).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

PONG = "PONG - Heartbeat received"
PING_METHODS = ("GET", "POST", "PUT", "PATCH")
RATE_LIMITED_BODY = {"message": "You are making too many requests! To avoid errors, please throttle your requests."}


@dataclass
class RateLimit:
    """A token bucket: ``per_minute`` tokens a minute, at most ``burst`` at once; one per Alert API request."""

    per_minute: float
    burst: int
    period: int = 60  # what X-RateLimit-Period-In-Sec says on a 429 (60: the per-minute bucket; 1: per second)
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)
    accepted: int = 0
    throttled: int = 0
    first_at: float | None = None
    last_at: float | None = None

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    @classmethod
    def parse(cls, body: Any) -> RateLimit | None:
        """A POST /_control/ratelimit body; None turns enforcement off; ValueError explains what is wrong."""
        if body is None or body == {}:
            return None
        if not isinstance(body, dict) or set(body) - {"per_minute", "burst", "period"}:
            raise ValueError('give {"per_minute": 600, "burst": 50, "period": 60} (or {} to stop enforcing)')
        rate, burst, period = body.get("per_minute"), body.get("burst", 1), body.get("period", 60)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
            raise ValueError('"per_minute" must be a number > 0')
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError('"burst" must be an integer >= 1')
        if period not in (1, 60):
            raise ValueError(
                '"period" must be 1 or 60 (seconds: the bucket OpsGenie names in X-RateLimit-Period-In-Sec)'
            )
        return cls(float(rate), burst, period)

    def take(self, now: float | None = None) -> bool:
        """One request: True when a token was there (accepted), False when throttled."""
        now = time.monotonic() if now is None else now
        self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.per_minute / 60.0)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.accepted += 1
            self.first_at = self.first_at if self.first_at is not None else now
            self.last_at = now
            return True
        self.throttled += 1
        return False

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-State": "THROTTLED",
            "X-RateLimit-Reason": "ACCOUNT",
            "X-RateLimit-Period-In-Sec": str(self.period),
        }

    def to_dict(self) -> dict[str, Any]:
        span = (self.last_at - self.first_at) if self.first_at is not None and self.last_at is not None else 0.0
        return {
            "per_minute": self.per_minute,
            "burst": self.burst,
            "accepted": self.accepted,
            "throttled": self.throttled,
            # accepted requests per minute between the first and the last one (the pacing benchmark reads this)
            "achieved_per_minute": round((self.accepted - 1) * 60.0 / span, 3) if span > 0 else None,
        }


@dataclass
class Heartbeats:
    """Every ping received, by heartbeat name."""

    pings: dict[str, list[str]] = field(default_factory=dict)

    def ping(self, name: str, at: str) -> None:
        self.pings.setdefault(name, []).append(at)

    def to_dict(self) -> dict[str, Any]:
        return {name: {"pings": len(at), "last_ping": at[-1]} for name, at in self.pings.items()}
