"""The lifecycle policies are pure decisions with the clock passed in: table tests of durations, recurring windows in
a time zone (across DST), silence matching, what the policies make of one event, flap counting, expiry, the source
heartbeat and the token bucket."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from alertbridge.core import policies as pol
from alertbridge.core.lifecycle import AliasRecord, Reason, Verdict, decide

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


# --- durations ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("2m", 120),
        ("1h30m", 5400),
        ("6h", 21600),
        ("1d", 86400),
        ("0", 0),
        (45, 45),
        (0.5, 0.5),
        ("1.5h", 5400),
        (" 2 m ", 120),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert pol.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["2x", "h", "-1m", -3, True, None, "1m-", "m2"])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ValueError):
        pol.parse_duration(bad)


@pytest.mark.parametrize(("seconds", "text"), [(150, "2m30s"), (21600, "6h"), (0, "0s"), (90061, "1d1h1m1s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert pol.format_duration(seconds) == text


# --- recurring windows ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("every", "days", "start", "end"),
    [
        ("sun 02:00-04:00", {6}, time(2), time(4)),
        ("Sunday 02:00-04:00", {6}, time(2), time(4)),
        ("sat,sun 22:00-06:00", {5, 6}, time(22), time(6)),
        ("mon-fri 12:00-13:00", {0, 1, 2, 3, 4}, time(12), time(13)),
        ("fri-mon 01:00-02:00", {4, 5, 6, 0}, time(1), time(2)),
        ("weekends 00:00-24:00", {5, 6}, time(0), time(23, 59, 59, 999999)),
        ("daily 9:30-10:00", set(range(7)), time(9, 30), time(10)),
    ],
)
def test_windows_parse(every: str, days: set[int], start: time, end: time) -> None:
    w = pol.Window.parse(every, "Europe/Berlin")
    assert (w.days, w.start, w.end) == (frozenset(days), start, end)


@pytest.mark.parametrize(
    ("every", "timezone", "message"),
    [
        ("sun 2-4", "UTC", "must look like"),
        ("funday 02:00-04:00", "UTC", "unknown day 'funday'"),
        ("sun 25:00-04:00", "UTC", "between 00:00 and 24:00"),
        ("sun 02:00-02:00", "UTC", "must not start and end at the same time"),
        ("sun 02:00-04:00", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_windows(every: str, timezone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pol.Window.parse(every, timezone)


BERLIN_SUNDAY = pol.Window.parse("sun 02:00-04:00", "Europe/Berlin")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("window", "at", "inside"),
    [
        # An ordinary winter Sunday: CET (UTC+1), so 02:00-04:00 local is 01:00-03:00 UTC.
        (BERLIN_SUNDAY, "2026-12-06 00:59:59", False),
        (BERLIN_SUNDAY, "2026-12-06 01:00:00", True),
        (BERLIN_SUNDAY, "2026-12-06 02:59:59", True),
        (BERLIN_SUNDAY, "2026-12-06 03:00:00", False),
        (BERLIN_SUNDAY, "2026-12-05 01:30:00", False),  # a Saturday
        # Summer (CEST, UTC+2): 00:00-02:00 UTC.
        (BERLIN_SUNDAY, "2026-07-05 00:00:00", True),
        (BERLIN_SUNDAY, "2026-07-05 02:00:00", False),
        # Spring forward, 2026-03-29: 02:00 local does not exist (01:00 UTC is 03:00 CEST). The window is the hour
        # 03:00-04:00 CEST = 01:00-02:00 UTC.
        (BERLIN_SUNDAY, "2026-03-29 00:59:59", False),  # 01:59:59 CET
        (BERLIN_SUNDAY, "2026-03-29 01:00:00", True),  # 03:00 CEST
        (BERLIN_SUNDAY, "2026-03-29 01:59:59", True),
        (BERLIN_SUNDAY, "2026-03-29 02:00:00", False),  # 04:00 CEST
        # Fall back, 2026-10-25: 02:00-03:00 happens twice (CEST then CET). The window is three hours:
        # 00:00-03:00 UTC.
        (BERLIN_SUNDAY, "2026-10-24 23:59:59", False),  # 01:59:59 CEST
        (BERLIN_SUNDAY, "2026-10-25 00:00:00", True),  # 02:00 CEST
        (BERLIN_SUNDAY, "2026-10-25 00:59:59", True),
        (BERLIN_SUNDAY, "2026-10-25 01:30:00", True),  # 02:30 CET, the second time
        (BERLIN_SUNDAY, "2026-10-25 02:59:59", True),  # 03:59:59 CET
        (BERLIN_SUNDAY, "2026-10-25 03:00:00", False),
        # Past midnight: Saturday 22:00 to Sunday 06:00 New York time belongs to Saturday.
        (pol.Window.parse("sat 22:00-06:00", "America/New_York"), "2026-12-06 03:00:00", True),  # Sat 22:00 EST
        (pol.Window.parse("sat 22:00-06:00", "America/New_York"), "2026-12-06 10:59:00", True),  # Sun 05:59
        (pol.Window.parse("sat 22:00-06:00", "America/New_York"), "2026-12-06 11:00:00", False),  # Sun 06:00
        (pol.Window.parse("sat 22:00-06:00", "America/New_York"), "2026-12-07 03:00:00", False),  # Sun 22:00
        (pol.Window.parse("daily 00:00-24:00", "UTC"), "2026-12-07 23:59:59", True),
    ],
)
def test_recurring_windows_follow_the_wall_clock_across_dst(window: pol.Window, at: str, inside: bool) -> None:
    assert window.contains(utc(at)) is inside


# --- silences ------------------------------------------------------------------------------------------------

CREATE = {"message": "m", "tags": ["db", "prod"], "priority": "P4", "details": {"team": "dba", "env": "prod-eu"}}


@pytest.mark.parametrize(
    ("silence", "integration", "alias", "matches"),
    [
        (pol.Silence(integration="generic"), "generic", "x", True),
        (pol.Silence(integration="generic"), "other", "x", False),
        (pol.Silence(alias="maint-*"), "any", "maint-db", True),
        (pol.Silence(alias="maint-*"), "any", "db-maint", False),
        (pol.Silence(alias="Maint-*"), "any", "maint-db", False),  # globs are case-sensitive, like aliases
        (pol.Silence(tags=("db",)), "any", "x", True),
        (pol.Silence(tags=("db", "staging")), "any", "x", False),  # every tag must be there
        (pol.Silence(priorities=("P4", "P5")), "any", "x", True),
        (pol.Silence(priorities=("P1",)), "any", "x", False),
        (pol.Silence(details=(("team", "dba"),)), "any", "x", True),
        (pol.Silence(details=(("env", "prod-*"),)), "any", "x", True),
        (pol.Silence(details=(("env", "staging*"),)), "any", "x", False),
        (pol.Silence(details=(("region", "*"),)), "any", "x", False),  # the key must be there
        (pol.Silence(integration="generic", alias="maint-*", tags=("db",)), "generic", "maint-1", True),
        (pol.Silence(integration="generic", alias="maint-*", tags=("db",)), "generic", "web-1", False),
    ],
)
def test_silence_matching(silence: pol.Silence, integration: str, alias: str, matches: bool) -> None:
    assert silence.matches(integration, alias, CREATE) is matches


def test_a_create_without_priority_counts_as_p3() -> None:
    assert pol.Silence(priorities=("P3",)).matches("i", "a", {"message": "m"})


ONE_OFF = pol.Silence(id=1, alias="*", starts_at=T0, ends_at=T0 + timedelta(hours=2))
WEEKLY = pol.Silence(id=2, alias="*", window=BERLIN_SUNDAY, ends_at=utc("2026-12-31 00:00:00"))


@pytest.mark.parametrize(
    ("silence", "at", "active", "over"),
    [
        (ONE_OFF, T0 - timedelta(seconds=1), False, False),
        (ONE_OFF, T0, True, False),
        (ONE_OFF, T0 + timedelta(hours=2) - timedelta(microseconds=1), True, False),
        (ONE_OFF, T0 + timedelta(hours=2), False, True),
        (
            pol.Silence(alias="*", starts_at=T0, ends_at=T0 + timedelta(hours=2), expired_at=T0 + timedelta(minutes=5)),
            T0 + timedelta(minutes=5),
            False,
            True,
        ),
        (WEEKLY, utc("2026-12-06 01:30:00"), True, False),
        (WEEKLY, utc("2026-12-06 04:00:00"), False, False),  # between two Sundays: waiting
        (WEEKLY, utc("2027-01-03 01:30:00"), False, True),  # a Sunday after its end
    ],
)
def test_silence_activity(silence: pol.Silence, at: datetime, active: bool, over: bool) -> None:
    assert (silence.active(at), silence.over(at)) == (active, over)


def test_the_first_active_matching_silence_wins() -> None:
    silences = [
        pol.Silence(id=1, alias="x", starts_at=T0 + timedelta(hours=1), ends_at=T0 + timedelta(hours=2)),
        pol.Silence(id=2, alias="y", starts_at=T0, ends_at=T0 + timedelta(hours=2)),
        pol.Silence(id=3, alias="x*", starts_at=T0, ends_at=T0 + timedelta(hours=2)),
    ]
    found = pol.silencing(silences, "i", "x", CREATE, T0)
    assert found is not None and found.id == 3
    assert pol.silencing(silences, "i", "z", CREATE, T0) is None


# --- what the policies make of one event ----------------------------------------------------------------------

OPEN = AliasRecord("open", 1, 1, opened_at=T0)
ACKED = AliasRecord("acknowledged", 1, 1, opened_at=T0, acknowledged_at=T0)
WITHHELD = AliasRecord("open", 1, 1, opened_at=T0, suppressed=True)
HELD = AliasRecord("closed", 1, 1, opened_at=T0, closed_at=T0, close_due_at=T0 + timedelta(minutes=2))
HELD_ACKED = AliasRecord(
    "closed", 1, 1, opened_at=T0, acknowledged_at=T0, closed_at=T0, close_due_at=T0 + timedelta(minutes=2)
)
SENT_CLOSE = AliasRecord("closed", 1, 1, opened_at=T0, closed_at=T0, close_due_at=T0 - timedelta(seconds=1))
SILENT = pol.Silence(id=7, alias="*", starts_at=T0 - timedelta(hours=1), ends_at=T0 + timedelta(hours=1), comment="m")
DELAY = pol.PolicySettings(close_delay=120)


def applied(
    record: AliasRecord | None, action: str, *, silences: tuple[pol.Silence, ...] = (), settings=DELAY, **kw: Any
) -> tuple[str, Reason, str | None]:
    base = decide(record.state if record else None, action, create_pending=bool(record and record.create_pending))
    out = pol.apply(
        base, action, "a", CREATE, record, integration="i", now=T0, policies=pol.Policies(settings, silences), **kw
    )
    return out.decision.verdict.value, out.decision.code, out.decision.next_state


@pytest.mark.parametrize(
    ("record", "action", "silences", "expected"),
    [
        # no silence: the lifecycle's decision, except that a close is held for close_delay
        (None, "create", (), ("send", Reason.NEW_ALERT, "open")),
        (OPEN, "close", (), ("delay", Reason.CLOSE_DELAYED, "closed")),
        (ACKED, "close", (), ("delay", Reason.CLOSE_DELAYED, "closed")),
        (OPEN, "note", (), ("send", Reason.NOTE_OPEN, None)),
        # a firing while the close is held: a flap, back to what it was (acknowledged stays acknowledged)
        (HELD, "create", (), ("suppress", Reason.FLAP, "open")),
        (HELD_ACKED, "create", (), ("suppress", Reason.FLAP, "acknowledged")),
        (HELD, "create", (SILENT,), ("suppress", Reason.FLAP, "open")),
        (SENT_CLOSE, "create", (), ("send", Reason.NEW_AFTER_CLOSE, "open")),  # the delay is over: a new alert
        (HELD, "close", (), ("ignore", Reason.NO_OPEN_ALERT, None)),  # a second resolve does not extend the delay
        # silenced: creates are recorded, not sent
        (None, "create", (SILENT,), ("suppress", Reason.SILENCED, "open")),
        (OPEN, "create", (SILENT,), ("suppress", Reason.SILENCED, "open")),
        # an alert OpsGenie has: its ack / close / note go out (the close still waits close_delay)
        (OPEN, "close", (SILENT,), ("delay", Reason.CLOSE_DELAYED, "closed")),
        (OPEN, "acknowledge", (SILENT,), ("send", Reason.ACKNOWLEDGE_OPEN, "acknowledged")),
        # an alert a silence withheld: OpsGenie does not have it
        (WITHHELD, "close", (SILENT,), ("suppress", Reason.WITHHELD_ALERT, "closed")),
        (WITHHELD, "close", (), ("suppress", Reason.WITHHELD_ALERT, "closed")),
        (WITHHELD, "acknowledge", (), ("suppress", Reason.WITHHELD_ALERT, "acknowledged")),
        (WITHHELD, "note", (SILENT,), ("suppress", Reason.WITHHELD_ALERT, None)),
        (WITHHELD, "create", (SILENT,), ("suppress", Reason.SILENCED, "open")),
        (WITHHELD, "create", (), ("send", Reason.SILENCE_OVER, "open")),  # the silence is over, it still fires
    ],
)
def test_what_the_policies_make_of_an_event(
    record: AliasRecord | None, action: str, silences: tuple[pol.Silence, ...], expected: tuple[Any, ...]
) -> None:
    assert applied(record, action, silences=silences) == expected


def test_no_delay_without_close_delay_or_for_the_sweepers_own_closes() -> None:
    assert applied(OPEN, "close", settings=pol.PolicySettings()) == ("send", Reason.CLOSE_OPEN, "closed")
    assert applied(OPEN, "close", delay_closes=False) == ("send", Reason.CLOSE_OPEN, "closed")
    # a close forwarded for an alert we never saw (forward_unknown) is not held either
    base = decide(None, "close", forward_unknown=True)
    out = pol.apply(base, "close", "a", {}, None, integration="i", now=T0, policies=pol.Policies(DELAY))
    assert out.decision.verdict == Verdict.SEND and out.due_at is None


def test_a_delayed_close_is_due_after_close_delay_and_a_flap_cancels_it() -> None:
    base = decide("open", "close")
    out = pol.apply(base, "close", "a", {}, OPEN, integration="i", now=T0, policies=pol.Policies(DELAY))
    assert out.due_at == T0 + timedelta(minutes=2) and not out.cancels_close
    out = pol.apply(
        decide("closed", "create"), "create", "a", CREATE, HELD, integration="i", now=T0, policies=pol.Policies(DELAY)
    )
    assert out.cancels_close and out.flaps is not None and out.details["flaps"] == 1


# --- flap counting --------------------------------------------------------------------------------------------


def ago(*minutes: float) -> tuple[datetime, ...]:
    return tuple(T0 - timedelta(minutes=m) for m in minutes)


@pytest.mark.parametrize(
    ("previous", "threshold", "window", "recent", "marked"),
    [
        ((), 3, 600, 1, False),
        (ago(5), 3, 600, 2, False),
        (ago(8, 5), 3, 600, 0, True),  # the third within 10 minutes: mark; counting starts again
        (ago(20, 5), 3, 600, 2, False),  # the one 20 minutes ago is outside the window
        (ago(0.5), 2, 60, 0, True),
        (ago(1), 2, 60, 1, False),  # exactly one window ago is outside it
        (ago(0.5), 0, 60, 2, False),  # no threshold: counted, never marked
    ],
)
def test_flap_counting(
    previous: tuple[datetime, ...], threshold: int, window: float, recent: int, marked: bool
) -> None:
    flaps = pol.count_flap(previous, T0, threshold=threshold, window=window)
    assert (len(flaps.recent), flaps.marked) == (recent, marked)


# --- stale-alert expiry ----------------------------------------------------------------------------------------

SIX_HOURS = pol.PolicySettings(expire_after=6 * 3600)


@pytest.mark.parametrize(
    ("state", "last_seen", "expired", "suppressed", "settings", "expected"),
    [
        ("open", T0 - timedelta(hours=5, minutes=59), None, False, SIX_HOURS, None),
        ("open", T0 - timedelta(hours=6), None, False, SIX_HOURS, "close"),
        ("acknowledged", T0 - timedelta(hours=7), None, False, SIX_HOURS, "close"),
        ("closed", T0 - timedelta(days=3), None, False, SIX_HOURS, None),
        ("open", T0 - timedelta(days=3), None, False, pol.PolicySettings(), None),  # expiry off
        ("open", T0 - timedelta(hours=7), None, True, SIX_HOURS, "close_locally"),  # OpsGenie never had it
        (
            "open",
            T0 - timedelta(hours=7),
            None,
            False,
            pol.PolicySettings(expire_after=21600, expire_action="note"),
            "note",
        ),
        # after a note (or a re-send) the clock starts again
        (
            "open",
            T0 - timedelta(hours=13),
            T0 - timedelta(hours=1),
            False,
            pol.PolicySettings(expire_after=21600, expire_action="note"),
            None,
        ),
        (
            "open",
            T0 - timedelta(hours=13),
            T0 - timedelta(hours=6),
            False,
            pol.PolicySettings(expire_after=21600, expire_action="resend"),
            "resend",
        ),
    ],
)
def test_expiry(
    state: str,
    last_seen: datetime,
    expired: datetime | None,
    suppressed: bool,
    settings: pol.PolicySettings,
    expected: str | None,
) -> None:
    got = pol.expiry(
        state=state, last_seen_at=last_seen, expired_at=expired, suppressed=suppressed, now=T0, settings=settings
    )
    assert (got.action if got else None) == expected


def test_expiry_notes_say_why() -> None:
    assert pol.expiry_text("close", 21700, 21600) == (
        "Closed by alertbridge: no webhook about this alert for 6h1m40s (expire_after = 6h)."
    )


# --- source heartbeats -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "since", "alert_open", "expect_every", "expected"),
    [
        (T0 - timedelta(minutes=59), T0 - timedelta(days=1), False, 3600, None),
        (T0 - timedelta(minutes=61), T0 - timedelta(days=1), False, 3600, "open"),
        (T0 - timedelta(minutes=61), T0 - timedelta(days=1), True, 3600, None),  # already says so
        (T0 - timedelta(minutes=1), T0 - timedelta(days=1), True, 3600, "close"),  # it speaks again
        (None, T0 - timedelta(minutes=30), False, 3600, None),  # never sent, watched for 30 minutes only
        (None, T0 - timedelta(minutes=61), False, 3600, "open"),
        (T0 - timedelta(days=9), T0 - timedelta(minutes=5), False, 3600, None),  # the expectation is new
        (None, T0 - timedelta(days=1), True, 0, "close"),  # the expectation was removed
    ],
)
def test_source_heartbeat(
    last: datetime | None, since: datetime, alert_open: bool, expect_every: float, expected: str | None
) -> None:
    got = pol.source_heartbeat(
        last_webhook_at=last, watching_since=since, alert_open=alert_open, now=T0, expect_every=expect_every
    )
    assert got == expected


# --- the token bucket -----------------------------------------------------------------------------------------

B600 = pol.Bucket(600, 50)


@pytest.mark.parametrize(
    ("bucket", "capacity"),
    [(B600, 45), (pol.Bucket(600, 0), 90), (pol.Bucket(60, 1), 1), (pol.Bucket(120, 10), 9), (pol.Bucket(6, 0), 1)],
)
def test_capacity_keeps_a_tenth_of_the_burst_unused(bucket: pol.Bucket, capacity: float) -> None:
    assert bucket.capacity == capacity


@pytest.mark.parametrize(
    ("tokens", "elapsed", "scale", "available"),
    [
        (None, 0, 1.0, 45),  # a new bucket starts full
        (0.0, 0.1, 1.0, 1.0),  # 600/min: one token per 100 ms
        (0.0, 1.0, 1.0, 10.0),
        (0.0, 60.0, 1.0, 45),  # never more than the capacity
        (3.5, 0.05, 1.0, 4.0),
        (0.0, 1.0, 0.5, 5.0),  # after a 429: half the rate ...
        (0.0, 60.0, 0.5, 22.5),  # ... and half the capacity
        (0.0, 60.0, 0.01, 1.0),  # at least one token fits
    ],
)
def test_refill(tokens: float | None, elapsed: float, scale: float, available: float) -> None:
    at = None if tokens is None else T0 - timedelta(seconds=elapsed)
    assert pol.refill(tokens, at, T0, B600, scale) == pytest.approx(available)


@pytest.mark.parametrize(
    ("available", "want", "granted"), [(3.99, 10, 3), (0.999999999999, 1, 1), (0.5, 1, 0), (45, 16, 16), (0, 0, 0)]
)
def test_take(available: float, want: int, granted: int) -> None:
    assert pol.take(available, want) == granted


def test_next_token() -> None:
    assert pol.next_token_in(0.25, B600) == pytest.approx(0.075)
    assert pol.next_token_in(1.0, B600) == 0.0
    assert pol.next_token_in(0.0, B600, 0.5) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("scale", "throttled_ago", "period", "now_scale", "after"),
    [
        (1.0, None, 60, 1.0, 0.5),  # the first 429 halves the rate
        (0.5, 0.2, 60, 0.5, 0.5),  # requests of the same burst count once
        (0.5, 30, 60, 0.55, 0.275),  # 30 s later it has grown by 5 % and halves from there
        (0.5, 300, 60, 1.0, 0.5),  # 5 minutes without a 429: all the way back
        (0.06, 2, 1, 0.06333, 0.05),  # never below 5 %
        (0.5, 600, 600, 0.6, 0.3),  # a longer period named by OpsGenie grows it back more slowly
    ],
)
def test_the_rate_after_a_429(
    scale: float, throttled_ago: float | None, period: float, now_scale: float, after: float
) -> None:
    at = None if throttled_ago is None else T0 - timedelta(seconds=throttled_ago)
    assert pol.scale_now(scale, at, period, T0) == pytest.approx(now_scale, abs=1e-3)
    assert pol.after_throttle(scale, at, period, T0) == pytest.approx(after, abs=1e-3)


@pytest.mark.parametrize(("priority", "rank"), [("P1", 1), ("P5", 5), (None, 3), ("p1", 3), ("P9", 3), (7, 3)])
def test_priority_rank(priority: Any, rank: int) -> None:
    assert pol.priority_rank(priority) == rank


def test_settings_round_trip_only_what_is_set() -> None:
    settings = pol.PolicySettings(close_delay=120, rate_per_minute=600, burst=50)
    assert settings.to_dict() == {"close_delay": 120, "rate_per_minute": 600, "burst": 50}
    assert pol.PolicySettings.from_dict({**settings.to_dict(), "unknown": 1}) == settings
