"""The policies inside the one plan step: what ingest, replay, `alertbridge render` and the console preview show for a
silenced, delayed or flapping event is what production does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alertbridge.core import policies as pol
from alertbridge.core.lifecycle import AliasRecord, Reason, Verdict
from alertbridge.core.plan import PlanSpec, plan
from alertbridge.limits import normalize_event
from tests.harness import FIXTURES, config_text
from tests.test_cli import cli_env, run_cli

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
SILENCE = pol.Silence(
    id=4,
    alias="maint-*",
    starts_at=NOW - timedelta(hours=1),
    ends_at=NOW + timedelta(hours=1),
    comment="db maintenance",
)


def spec(**settings: object) -> PlanSpec:
    return PlanSpec("generic", policies=pol.Policies(pol.PolicySettings(**settings), (SILENCE,)))  # type: ignore[arg-type]


def ev(action: str, alias: str, **fields: object) -> object:
    return normalize_event({"action": action, "alias": alias, "message": "m", "note": "n", **fields})


def test_a_silenced_create_is_planned_as_suppressed_with_its_silence() -> None:
    result = plan([ev("create", "maint-db", priority="P2"), ev("create", "web")], {}, spec(), NOW)
    silenced, sent = result.events
    assert (silenced.decision.verdict, silenced.decision.code) == (Verdict.SUPPRESS, Reason.SILENCED)
    assert (
        not silenced.send
        and silenced.by_policy
        and silenced.details == {"silence_id": 4, "silence_comment": "db maintenance"}
    )
    assert silenced.after is not None and silenced.after.suppressed and not silenced.after.create_pending
    assert silenced.priority == 2 and sent.send and not sent.by_policy
    shown = result.to_dict()[0]
    assert (shown["decision"], shown["reason_code"], shown["policy"]["silence_id"]) == ("suppress", "silenced", 4)
    assert shown["reason"] == "silenced: recorded, not sent: silence #4: db maintenance"


def test_a_delayed_close_is_due_later_and_shown_so() -> None:
    record = AliasRecord("open", 1, 1, opened_at=NOW - timedelta(hours=1), priority="P4")
    result = plan([ev("close", "q")], {"q": record}, spec(close_delay=120), NOW)
    (e,) = result.events
    assert (e.decision.verdict, e.due_at, e.send, e.priority) == (Verdict.DELAY, NOW + timedelta(minutes=2), True, 4)
    assert result.aliases[0].record.close_due_at == NOW + timedelta(minutes=2)
    assert result.aliases[0].record.state == "closed"
    assert result.to_dict()[0]["due_at"] == "2026-12-06T03:02:00+00:00"


def test_the_flap_that_reaches_flap_threshold_adds_a_note_after_the_webhooks_events() -> None:
    held = AliasRecord(
        "closed",
        1,
        1,
        opened_at=NOW - timedelta(hours=1),
        closed_at=NOW,
        close_due_at=NOW + timedelta(minutes=1),
        flaps=(NOW - timedelta(minutes=3),),
    )
    result = plan(
        [ev("create", "q", user="genesys"), ev("create", "other")],
        {"q": held},
        spec(close_delay=120, flap_threshold=2, flap_window=600),
        NOW,
    )
    flap, other, note = result.events
    assert (flap.decision.code, flap.cancels_close, flap.after.state, flap.after.flaps) == (  # type: ignore[union-attr]
        Reason.FLAP,
        True,
        "open",
        (),
    )
    assert other.decision.code == Reason.NEW_ALERT
    assert (note.seq, note.action, note.alias, note.decision.code, note.send) == (2, "note", "q", Reason.FLAPPING, True)
    assert note.event.fields["note"].startswith("Flapping: fired again within close_delay 2 times in 10m")
    assert note.event.fields["user"] == "genesys"
    assert note.request is not None and note.request.url.endswith("/v2/alerts/generic%3Aq/notes?identifierType=alias")


def test_below_the_threshold_a_flap_is_only_counted() -> None:
    held = AliasRecord("closed", 1, 1, opened_at=NOW, closed_at=NOW, close_due_at=NOW + timedelta(minutes=1))
    result = plan([ev("create", "q")], {"q": held}, spec(close_delay=120, flap_threshold=3), NOW)
    assert [e.decision.code for e in result.events] == [Reason.FLAP]
    assert result.aliases[0].record.flaps == (NOW,)


def test_a_withheld_alert_is_sent_by_its_next_firing_once_the_silence_is_over() -> None:
    withheld = AliasRecord("open", 1, 1, opened_at=NOW - timedelta(hours=3), suppressed=True)
    later = NOW + timedelta(hours=2)
    result = plan([ev("create", "maint-db")], {"maint-db": withheld}, spec(), later)
    (e,) = result.events
    assert (e.decision.verdict, e.decision.code) == (Verdict.SEND, Reason.SILENCE_OVER)
    assert e.after is not None and not e.after.suppressed and e.after.create_pending


def test_render_with_a_config_shows_the_silence(tmp_path: Path) -> None:
    """`alertbridge render --config` plans with the integration's policies, silences included."""
    silence = (
        '[[silences]]\nintegration = "generic"\nalias = "maint-*"\nevery = "daily 00:00-24:00"\n'
        'comment = "always in maintenance"\n'
    )
    cfg = tmp_path / "alertbridge.toml"
    cfg.write_text(config_text("http://127.0.0.1:9", integrations=(("generic", "generic"),), server=silence))
    payload = tmp_path / "p.json"
    payload.write_text(json.dumps({"action": "create", "alias": "maint-x", "message": "m"}))
    done = run_cli(
        "render",
        "--template",
        "generic",
        "--payload",
        str(payload),
        "--config",
        str(cfg),
        "--integration",
        "generic",
        env=cli_env(),
        cwd=FIXTURES,
    )
    assert done.returncode == 0, done.stderr
    (event,) = json.loads(done.stdout)
    assert (event["decision"], event["reason_code"]) == ("suppress", "silenced")
    assert "always in maintenance" in event["reason"]
