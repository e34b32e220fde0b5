"""Lifecycle policies, pure: silences (one-off and recurring windows in a time zone), the close debounce (flap
damping) and flap counting, stale-alert expiry, the source heartbeat, and the token bucket that paces deliveries.

Nothing here reads a clock: ``now`` is always an argument. ``core/plan.py`` applies silences, the close delay and
flap counting to every webhook event; the sweeper (``app/sweeper.py``) applies expiry, the end of silences and
source heartbeats; the worker's claim applies the token bucket (``store/targets.py`` keeps it in Postgres).
docs/policies.md explains each policy; docs/decisions.md why it behaves as it does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from fnmatch import fnmatchcase
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alertbridge.core.lifecycle import ACKED, CLOSED, LIVE, OPEN, AliasRecord, Decision, Reason, Verdict

# --- durations ----------------------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)([smhd]))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(value: Any) -> float:
    """Seconds from ``"90s"``, ``"2m"``, ``"1h30m"``, ``"1d"`` or a number of seconds; ValueError when it is
    neither (negative values too)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like '2m', '6h', '1h30m' or a number of seconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a duration >= 0")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("must be a duration like '2m', '6h', '1h30m' or a number of seconds")
    text = value.strip().lower().replace(" ", "")
    if text in ("0", ""):
        return 0.0
    if not _DURATION.match(text):
        raise ValueError(f"must be a duration like '2m', '6h', '1h30m' or a number of seconds (got {value!r})")
    return float(sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """``150`` -> ``"2m30s"`` (what people read in reasons and the console)."""
    seconds = round(seconds)
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


# --- recurring windows --------------------------------------------------------------------------------------

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_GROUPS = {"daily": DAYS, "weekdays": DAYS[:5], "weekends": DAYS[5:]}
_EVERY = re.compile(r"^\s*([a-z,\s-]+?)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Window:
    """A recurring window in wall-clock time: on ``days`` (0 = Monday), from ``start`` to ``end`` local time in
    ``timezone``. An instant is inside when its local time in that zone is in [start, end) on one of the days (a
    window that ends at or before it starts runs past midnight and belongs to the day it starts on). Defined on
    the wall clock, DST needs no special case: on the spring-forward day "02:00-04:00" is the hour 03:00-04:00
    (02:xx does not exist), on the fall-back day it is three hours (02:xx happens twice)."""

    days: frozenset[int]
    start: time
    end: time
    timezone: str

    @classmethod
    def parse(cls, every: str, timezone: str) -> Window:
        """``"sun 02:00-04:00"``, ``"sat,sun 22:00-06:00"``, ``"daily 12:00-13:00"``, ``"weekdays ..."``."""
        m = _EVERY.match(every.lower()) if isinstance(every, str) else None
        if not m:
            raise ValueError(f"must look like 'sun 02:00-04:00' or 'weekdays 22:00-06:00' (got {every!r})")
        days: set[int] = set()
        for word in re.split(r"[,\s]+", m.group(1).strip()):
            if word in _DAY_GROUPS:
                days.update(DAYS.index(d) for d in _DAY_GROUPS[word])
            elif "-" in word:
                a, b = (_day(p) for p in word.split("-", 1))
                days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
            else:
                days.add(_day(word))
        h1, m1, h2, m2 = (int(m.group(i)) for i in range(2, 6))
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2 != 0):
            raise ValueError(f"times must be HH:MM between 00:00 and 24:00 (got {every!r})")
        if (h1, m1) == (h2, m2):
            raise ValueError("the window must not start and end at the same time")
        zone(timezone)
        end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
        return cls(frozenset(days), time(h1, m1), end, timezone)

    @property
    def text(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        end = "24:00" if self.end == time(23, 59, 59, 999999) else self.end.strftime("%H:%M")
        return f"{days} {self.start.strftime('%H:%M')}-{end} {self.timezone}"

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(zone(self.timezone))
        t, day = local.time().replace(tzinfo=None), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= t < self.end
        # Past midnight: the evening part belongs to today, the morning part to yesterday's window.
        return (day in self.days and t >= self.start) or ((day - 1) % 7 in self.days and t < self.end)


_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day(word: str) -> int:
    if word in DAYS:
        return DAYS.index(word)
    if word in _FULL:
        return _FULL.index(word)
    raise ValueError(f"unknown day {word!r} (use mon..sun, a range like mon-fri, daily, weekdays, weekends)")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')") from None


# --- silences -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Silence:
    """Creates that match are recorded and not sent while the silence is active. Matchers (all that are set must
    match): ``integration`` (None: every integration), ``alias`` (a glob on the alias as the template rendered
    it), ``tags`` (each must be on the event), ``priorities`` (one of them), ``details`` (label -> glob on the
    value of that key of the event's details)."""

    id: int | None = None
    integration: str | None = None
    alias: str | None = None
    tags: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    details: tuple[tuple[str, str], ...] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    window: Window | None = None
    comment: str = ""
    created_by: str = ""
    expired_at: datetime | None = None  # expired early

    def active(self, now: datetime) -> bool:
        if self.expired_at is not None and now >= self.expired_at:
            return False
        if self.starts_at is not None and now < self.starts_at:
            return False
        if self.ends_at is not None and now >= self.ends_at:
            return False
        return self.window.contains(now) if self.window is not None else True

    def over(self, now: datetime) -> bool:
        """Will never be active again."""
        ended = self.ends_at is not None and now >= self.ends_at
        return ended or (self.expired_at is not None and now >= self.expired_at)

    def matches(self, integration: str, alias: str, fields: Mapping[str, Any]) -> bool:
        if self.integration is not None and self.integration != integration:
            return False
        if self.alias is not None and not fnmatchcase(alias, self.alias):
            return False
        if self.tags:
            have = {str(t) for t in fields.get("tags") or ()}
            if not set(self.tags) <= have:
                return False
        if self.priorities and (fields.get("priority") or "P3") not in self.priorities:
            return False
        if self.details:
            details = fields.get("details") or {}
            if not isinstance(details, Mapping):
                return False
            for key, pattern in self.details:
                if key not in details or not fnmatchcase(str(details[key]), pattern):
                    return False
        return True

    @property
    def label(self) -> str:
        name = f"silence #{self.id}" if self.id is not None else "silence"
        return f"{name}: {self.comment}" if self.comment else name


def silencing(
    silences: Iterable[Silence], integration: str, alias: str, fields: Mapping[str, Any], now: datetime
) -> Silence | None:
    """The first active silence that matches a create (None: not silenced)."""
    for s in silences:
        if s.active(now) and s.matches(integration, alias, fields):
            return s
    return None


# --- per-integration settings ---------------------------------------------------------------------------------

EXPIRE_ACTIONS = ("close", "note", "resend")


@dataclass(frozen=True)
class PolicySettings:
    """``[integrations.policies]`` (and the pacing keys of ``[integrations.target]``); 0 turns a policy off."""

    close_delay: float = 0.0  # seconds a close is held (flap damping)
    flap_threshold: int = 0  # mark an alert as flapping after this many flaps ...
    flap_window: float = 3600.0  # ... within this many seconds
    expire_after: float = 0.0  # an open alias with no webhook this long expires
    expire_action: str = "close"  # close | note | resend
    expect_every: float = 0.0  # source heartbeat: alert when no webhook comes this long
    expect_priority: str = "P3"
    rate_per_minute: float = 0.0  # token bucket of the target (0: not paced)
    burst: int = 0  # the bucket's size (0: rate_per_minute / 6, at least 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v != getattr(_DEFAULTS, k)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PolicySettings:
        known = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


_DEFAULTS = PolicySettings()


@dataclass(frozen=True)
class Policies:
    """What planning needs of the policies: the integration's settings and the silences that may apply to it."""

    settings: PolicySettings = field(default_factory=PolicySettings)
    silences: tuple[Silence, ...] = ()


NO_POLICIES = Policies()


# --- flap damping --------------------------------------------------------------------------------------------


def close_due(close_due_at: datetime | None, now: datetime) -> bool:
    """A delayed close of the alias is still held (a firing now is a flap)."""
    return close_due_at is not None and close_due_at > now


MAX_FLAPS = 20  # flaps kept on an alias when no flap_threshold marks them


@dataclass(frozen=True)
class Flaps:
    recent: tuple[datetime, ...]  # flap times within the window, oldest first
    marked: bool  # this flap reached the threshold: mark the alert as flapping


def count_flap(previous: Sequence[datetime], now: datetime, *, threshold: int, window: float) -> Flaps:
    """One more flap at ``now``: the flaps within ``window`` seconds, and whether this one makes ``threshold``
    (marked once each time the count reaches it; the count starts again after the mark)."""
    since = now - timedelta(seconds=window)
    recent = tuple(t for t in previous if t > since) + (now,)
    if threshold <= 0:  # no marking: the count is only shown (the last few)
        return Flaps(recent[-MAX_FLAPS:], False)
    if len(recent) >= threshold:
        return Flaps((), True)
    return Flaps(recent, False)


# --- what the policies make of one webhook event (plan calls this after the lifecycle's decide) -------------------


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    due_at: datetime | None = None  # a delayed close goes out then
    cancels_close: bool = False  # a flap: the held close of the alias is cancelled
    silence: Silence | None = None  # the silence that matched
    flaps: Flaps | None = None  # a flap was counted

    @property
    def details(self) -> dict[str, Any]:
        """What the alias history keeps besides the reason (which silence, how many flaps, until when)."""
        out: dict[str, Any] = {}
        if self.silence is not None:
            out["silence_id"] = self.silence.id
            if self.silence.comment:
                out["silence_comment"] = self.silence.comment
        if self.due_at is not None:
            out["due_at"] = self.due_at.isoformat()
        if self.flaps is not None:
            out["flaps"] = len(self.flaps.recent) if not self.flaps.marked else "threshold"
        return out


def apply(
    base: Decision,
    action: str,
    alias: str,
    fields: Mapping[str, Any],
    before: AliasRecord | None,
    *,
    integration: str,
    now: datetime,
    policies: Policies,
    delay_closes: bool = True,
) -> Outcome:
    """The policies on top of the lifecycle's decision ``base`` for one event:

    * a create while a delayed close of the alias is held is a **flap**: the close is cancelled, nothing is sent,
      the alias is live again as it was;
    * a create that an active silence matches is **suppressed** (recorded, not sent; a new alert is kept here as
      "withheld", and sent when the silence ends if it still fires);
    * a create for a withheld alert once no silence matches any more **sends** it (the silence is over);
    * an acknowledge, close or note of a withheld alert is recorded and not sent (OpsGenie does not have it);
    * a close that would be sent waits ``close_delay`` (``delay_closes``: not for the sweeper's own closes).
    """
    s = policies.settings
    if action == "create":
        if before is not None and before.state == CLOSED and close_due(before.close_due_at, now):
            prior = ACKED if before.acknowledged_at is not None else OPEN
            flaps = count_flap(before.flaps, now, threshold=s.flap_threshold, window=s.flap_window)
            decision = Decision(Verdict.SUPPRESS, prior, Reason.FLAP, count_delta=1)
            return Outcome(decision, cancels_close=True, flaps=flaps)
        if base.verdict not in (Verdict.SEND, Verdict.COALESCE):
            return Outcome(base)
        silence = silencing(policies.silences, integration, alias, fields, now)
        if silence is not None:
            return Outcome(
                replace(base, verdict=Verdict.SUPPRESS, code=Reason.SILENCED, detail=silence.label), silence=silence
            )
        if before is not None and before.suppressed and before.state in LIVE:
            return Outcome(replace(base, verdict=Verdict.SEND, code=Reason.SILENCE_OVER))
        return Outcome(base)
    if base.verdict != Verdict.SEND or before is None or before.state not in LIVE:
        return Outcome(base)
    if before.suppressed:
        return Outcome(replace(base, verdict=Verdict.SUPPRESS, code=Reason.WITHHELD_ALERT))
    if action == "close" and delay_closes and s.close_delay > 0:
        due = now + timedelta(seconds=s.close_delay)
        detail = "due " + due.isoformat(timespec="seconds")
        return Outcome(replace(base, verdict=Verdict.DELAY, code=Reason.CLOSE_DELAYED, detail=detail), due_at=due)
    return Outcome(base)


def flapping_note(flaps: int, window: float) -> str:
    return (
        f"Flapping: fired again within close_delay {flaps} times in {format_duration(window)}; alertbridge keeps "
        "the alert open while it flaps."
    )


# --- stale-alert expiry --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expiry:
    action: str  # close | note | resend | close_locally (OpsGenie never had the alert: nothing is sent)
    idle: float  # seconds since the last webhook about the alias (or the last expiry action)


def expiry(
    *,
    state: str,
    last_seen_at: datetime,
    expired_at: datetime | None,
    suppressed: bool,
    now: datetime,
    settings: PolicySettings,
) -> Expiry | None:
    """What expiry does to one alias now (None: nothing). Only live aliases expire; a webhook about the alias
    (``last_seen_at``) keeps it alive; after a note or a re-send the clock starts again."""
    if settings.expire_after <= 0 or state not in ("open", "acknowledged"):
        return None
    since = max(last_seen_at, expired_at) if expired_at is not None else last_seen_at
    idle = (now - since).total_seconds()
    if idle < settings.expire_after:
        return None
    if suppressed:
        return Expiry("close_locally", idle)
    return Expiry(settings.expire_action, idle)


def expiry_text(action: str, idle: float, expire_after: float) -> str:
    quiet = f"no webhook about this alert for {format_duration(idle)} (expire_after = {format_duration(expire_after)})"
    return {
        "close": f"Closed by alertbridge: {quiet}.",
        "note": f"Still open, but {quiet}: is it still firing?",
        "resend": f"Sent again by alertbridge: {quiet}.",
        "close_locally": f"Closed here by alertbridge (OpsGenie never had it: withheld by a silence): {quiet}.",
    }[action]


# --- source heartbeat ----------------------------------------------------------------------------------------

SOURCE_SILENT_ALIAS = "alertbridge:source-silent"


def source_heartbeat(
    *, last_webhook_at: datetime | None, watching_since: datetime, alert_open: bool, now: datetime, expect_every: float
) -> str | None:
    """``"open"`` when the source has been silent for ``expect_every`` and no alert says so yet, ``"close"`` when it
    spoke again while the alert is open, else None. ``watching_since``: when the expectation began (a source that
    never sent counts from there)."""
    if expect_every <= 0:
        return "close" if alert_open else None
    last = max(last_webhook_at, watching_since) if last_webhook_at is not None else watching_since
    silent = (now - last).total_seconds() >= expect_every
    if silent and not alert_open:
        return "open"
    if not silent and alert_open:
        return "close"
    return None


# --- the token bucket ------------------------------------------------------------------------------------------

HEADROOM = 0.1  # of the burst, kept unused: requests in flight may reach OpsGenie closer together than sent
SHRINK = 0.5  # a 429 that still comes halves the rate (429s within SAME_BURST of it count once) ...
SAME_BURST = 1.0
RECOVER = 0.1  # ... which then grows back by this share of the configured rate per minute without a 429
MIN_SCALE = 0.05


@dataclass(frozen=True)
class Bucket:
    rate_per_minute: float
    burst: int

    @property
    def capacity(self) -> float:
        """The tokens the bucket holds at most: the burst less its headroom (at least one)."""
        size = self.burst if self.burst > 0 else max(1, math.floor(self.rate_per_minute / 6))
        return float(max(1, size - math.ceil(size * HEADROOM)))


def scale_now(scale: float, throttled_at: datetime | None, period: float, now: datetime) -> float:
    """The share of the configured rate in use: after a 429 it was ``scale``; it grows back linearly, by
    ``RECOVER`` per minute (or per ``period`` seconds, if OpsGenie named a longer one) without a 429, to 1."""
    if scale >= 1 or throttled_at is None:
        return 1.0
    grown = RECOVER * max(0.0, (now - throttled_at).total_seconds()) / max(period, 60.0)
    return min(1.0, scale + grown)


def after_throttle(scale: float, throttled_at: datetime | None, period: float, now: datetime) -> float:
    """The scale after a 429 at ``now``: half of what it was at that moment (never below ``MIN_SCALE``). The
    requests of one burst that were already on their way count as one 429 (within ``SAME_BURST`` seconds)."""
    current = scale_now(scale, throttled_at, period, now)
    if throttled_at is not None and (now - throttled_at).total_seconds() < SAME_BURST:
        return current
    return max(MIN_SCALE, current * SHRINK)


def refill(tokens: float | None, at: datetime | None, now: datetime, bucket: Bucket, scale: float = 1.0) -> float:
    """Tokens available at ``now``: what was left at ``at`` plus the rate since then, at most the capacity (a new
    bucket starts full). After a 429 (``scale`` < 1) the rate and the capacity both shrink."""
    cap = max(1.0, bucket.capacity * scale)
    if tokens is None or at is None:
        return cap
    elapsed = max(0.0, (now - at).total_seconds())
    return min(cap, tokens + elapsed * bucket.rate_per_minute * scale / 60.0)


def take(available: float, want: int) -> int:
    """Whole tokens granted out of ``available`` for ``want`` requests."""
    return max(0, min(want, math.floor(available + 1e-9)))


def next_token_in(available: float, bucket: Bucket, scale: float = 1.0) -> float:
    """Seconds until one whole token is there."""
    rate = bucket.rate_per_minute * scale / 60.0
    if available >= 1 or rate <= 0:
        return 0.0
    return (1 - available) / rate


# --- priority under pacing -------------------------------------------------------------------------------------


def priority_rank(priority: Any) -> int:
    """1 (P1) .. 5 (P5); anything else counts as P3 (OpsGenie's default)."""
    if isinstance(priority, str) and len(priority) == 2 and priority[0] == "P" and priority[1] in "12345":
        return int(priority[1])
    return 3
