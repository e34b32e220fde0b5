"""The console in a real browser (Debian's chromium, driven by Playwright) against the real bridge, Postgres and
the OpsGenie emulator: what an admin does, step by step, and what the browser shows. Screenshots of every page go
to ALERTBRIDGE_SCREENSHOT_DIR (docs/console refreshes the docs' pictures)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from alertbridge.rendering import load_template_source
from tests.admin_harness import Console, make_user, running_console
from tests.harness import FIXTURES, fixture_bytes, wait_for

pytestmark = pytest.mark.slow

ALICE, ALICE_PW = "alice", "alice-password-1"
VICTOR, VICTOR_PW = "victor", "victor-password-1"
LONG_MESSAGE = '"message": {{ ("PAGE THE CHECKOUT TEAM NOW: " ~ message ~ " - runbook " ~ annotations.get("runbook_url", "")) | tojson }},'
WIDE = {"width": 1440, "height": 900}


@pytest.fixture
def live(database_url: str) -> Iterator[Console]:
    with running_console(database_url) as console:
        make_user(database_url, ALICE, ALICE_PW, "admin")
        make_user(database_url, VICTOR, VICTOR_PW, "viewer")
        yield console


@pytest.fixture
def page(browser: Any, live: Console) -> Iterator[Any]:
    context = browser.new_context(viewport=WIDE, base_url=live.base_url)
    context.set_default_timeout(15_000)
    p = context.new_page()
    p.dialogs = []  # type: ignore[attr-defined]
    p.on("dialog", lambda d: (p.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    try:
        yield p
    finally:
        context.close()


def shot(page: Any, folder: Path, name: str, *, full: bool = False) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    assert path.stat().st_size > 5000


def login(page: Any, name: str = ALICE, password: str = ALICE_PW) -> None:
    page.goto("/console/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/integrations")


def wait_preview(page: Any, text: str) -> None:
    page.locator("#preview").get_by_text(text, exact=False).first.wait_for()


def emulator_messages(live: Console) -> list[str]:
    return [r["json"]["message"] for r in live.emulator.state.requests if r["json"] and "message" in r["json"]]


def settled(db: psycopg.Connection) -> bool:
    return db.execute("SELECT count(*) FROM outbox WHERE status IN ('pending', 'in_flight')").fetchone() == (0,)


# --- log in -------------------------------------------------------------------------------------------------


def test_log_in_log_out_and_a_wrong_password(page: Any, live: Console, screenshot_dir: Path) -> None:
    page.goto("/console/integrations")
    page.wait_for_url("**/console/login?next=*")
    shot(page, screenshot_dir, "01-login")
    page.fill("input[name=name]", ALICE)
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() == "wrong user name or password"
    page.fill("input[name=password]", ALICE_PW)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/integrations")
    assert page.locator("table.list tbody tr").count() == 3
    cookie = next(c for c in page.context.cookies() if c["name"] == "alertbridge_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.click("button:text('Log out')")
    page.wait_for_url("**/console/login")
    # The session is gone server side: the old cookie does not work any more.
    r = httpx.get(f"{live.base_url}/console/integrations", cookies={"alertbridge_session": cookie["value"]})
    assert r.status_code == 303 and "/console/login" in r.headers["location"]


# --- the editor, save, live, diff, restore ----------------------------------------------------------------------


def test_fix_preview_save_diff_and_restore_with_the_next_webhook_live(
    page: Any, live: Console, db: psycopg.Connection, screenshot_dir: Path
) -> None:
    stored = live.webhook("alertmanager", fixture_bytes("alertmanager/01_firing_two_alerts.json")).json()["id"]
    wait_for(lambda: settled(db), what="the first deliveries")
    login(page)
    page.click("a:text-is('alertmanager')")
    page.click("a:text('Template editor')")
    page.wait_for_url("**/alertmanager/editor")
    # The stored Alertmanager webhook is chosen and previewed: the exact request to the emulator target.
    assert page.locator(f"input[name=inbound_id][value='{stored}']").is_checked()
    wait_preview(page, "Within OpsGenie's limits")
    assert page.locator("#preview article.event").count() == 2
    assert "p99 latency of POST /v2/checkout" in page.locator("#payload-view").inner_text()

    # Make the message longer than OpsGenie's 130 characters: the limit report shows the cut, as typed.
    _, source = load_template_source("alertmanager")
    line = next(x for x in source.splitlines() if x.strip().startswith('"message":'))
    page.fill("#source", source.replace(line, "    " + LONG_MESSAGE))
    wait_preview(page, "Limit report")
    report = page.locator("#preview .limits tbody tr").first.inner_text()
    assert "message" in report and re.search(r"\b1\d\d\b\s+130\s+−\d+ characters", report), report
    first_message = page.locator("#preview article.event table.fields td").first.inner_text()
    assert first_message.startswith("PAGE THE CHECKOUT TEAM NOW: p99 latency") and len(first_message) == 130
    shot(page, screenshot_dir, "03-editor-limit-report")

    # Test against recent traffic, then save with a comment.
    page.click("button:text('Test against recent traffic')")
    page.locator("#traffic").get_by_text("newly truncate").first.wait_for()
    assert "1 of the last 1 webhooks would change" in page.locator("#traffic").inner_text()
    page.fill("#comment", "page the checkout team explicitly")
    page.click("#save")
    page.locator(".flash").get_by_text("Version 2 saved").first.wait_for()
    shot(page, screenshot_dir, "04-editor-saved")

    # The NEXT webhook to the running bridge reaches the emulator with the new message, without a restart.
    before = len(emulator_messages(live))
    assert live.webhook("alertmanager", fixture_bytes("alertmanager/03_new_alert_added.json")).status_code == 202
    wait_for(lambda: len(emulator_messages(live)) > before and settled(db), what="the next deliveries")
    new = emulator_messages(live)[before:]
    assert new and all(m.startswith("PAGE THE CHECKOUT TEAM NOW: ") and len(m) == 130 for m in new), new

    # Versions: the diff of the two, then restore version 1.
    page.click("a:text('Versions')")
    page.wait_for_url("**/alertmanager/versions")
    assert page.locator("table.versions tbody tr").count() == 2
    assert "page the checkout team explicitly" in page.locator("table.versions").inner_text()
    shot(page, screenshot_dir, "05-versions")
    page.click("button:text('Compare the two chosen versions')")
    page.wait_for_url("**/diff?*")
    assert "version 1 → 2" in page.locator("h1").inner_text()
    assert "PAGE THE CHECKOUT TEAM NOW" in page.locator("pre.diff .add").inner_text()
    assert '"message": {{ message | tojson }},' in page.locator("pre.diff .del").inner_text()
    shot(page, screenshot_dir, "06-diff")
    page.click("a:text('All versions')")
    page.click("button:text('Restore v1')")
    page.locator(".flash").get_by_text("Version 1 restored as version 3").first.wait_for()
    before = len(emulator_messages(live))
    assert live.webhook("alertmanager", fixture_bytes("alertmanager/01_firing_two_alerts.json")).status_code == 202
    wait_for(lambda: len(emulator_messages(live)) >= before + 2 and settled(db), what="deliveries after the restore")
    assert all(m.startswith("p99 latency") for m in emulator_messages(live)[before:])
    assert db.execute(
        "SELECT version, author, restored_from FROM template_versions WHERE integration = 'alertmanager' ORDER BY version"
    ).fetchall() == [(1, "config file", None), (2, ALICE, None), (3, ALICE, 1)]


# --- failed webhooks and dead letters -----------------------------------------------------------------------------


BROKEN = '{"action": "create", "alias": "{{ payload.alias }}", "message": "{{ payload.details.summary }}"}'
FIXED = '{"action": "create", "alias": "{{ payload.alias }}", "message": "{{ payload.message }}"}'


def test_replay_a_failed_webhook_after_fixing_its_template(
    page: Any, live: Console, db: psycopg.Connection, screenshot_dir: Path
) -> None:
    assert (
        live.api("PUT", "/integrations/generic/template", json={"source": BROKEN, "comment": "oops"}).status_code == 201
    )
    r = live.webhook("generic", {"alias": "backup", "message": "Nightly backup failed"})
    assert r.status_code == 422
    failed = r.json()["id"]
    login(page)
    page.click("nav a:text('Failed webhooks')")
    row = page.locator(f"#inbound-{failed}")
    assert "line 1" in row.inner_text() and "details" in row.inner_text() and "not replayed" in row.inner_text()
    shot(page, screenshot_dir, "07-failed-webhooks")
    row.locator("a:text('Fix in editor')").click()
    page.wait_for_url(f"**/generic/editor?inbound={failed}")
    wait_preview(page, "Template error on line 1")
    page.fill("#source", FIXED)
    wait_preview(page, "Within OpsGenie's limits")
    page.fill("#comment", "message is top level")
    page.click("#save")
    page.locator(".flash").get_by_text("saved").first.wait_for()
    page.click("nav a:text('Failed webhooks')")
    page.locator(f"#inbound-{failed} button:text('Replay')").click()
    page.locator(".flash").get_by_text("accepted").first.wait_for()
    row = page.locator(f"#inbound-{failed}")
    assert "fixed" in row.inner_text() and "processed" in row.inner_text() and ALICE in row.inner_text()
    assert "template error" in row.inner_text()  # the original failure stays next to its replay
    shot(page, screenshot_dir, "08-failed-replayed")
    wait_for(lambda: "Nightly backup failed" in emulator_messages(live), what="the replayed alert at the emulator")
    assert db.execute("SELECT status, current_status FROM inbound_events WHERE id = %s", (failed,)).fetchone() == (
        "template_error",
        "processed",
    )


def test_replay_and_discard_dead_letters(
    page: Any, live: Console, db: psycopg.Connection, screenshot_dir: Path
) -> None:
    httpx.post(f"{live.emulator.base_url}/_control/faults", json={"status": 422, "count": 2}).raise_for_status()
    live.webhook("generic", {"action": "create", "alias": "disk-full", "message": "Disk full on db-1"})
    live.webhook("generic", {"action": "create", "alias": "dup", "message": "Duplicate"})
    wait_for(
        lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'dead'").fetchone() == (2,), what="dead letters"
    )
    login(page)
    page.click("nav a:text('Dead letters')")
    table = page.locator("table.dead").inner_text()
    assert "HTTP 422" in table and "disk-full" in table
    shot(page, screenshot_dir, "09-dead-letters")
    disk, dup = (db.execute("SELECT id FROM outbox WHERE alias = %s", (a,)).fetchone()[0] for a in ("disk-full", "dup"))  # type: ignore[index]
    page.check(f"input[name=ids][value='{disk}']")
    page.click("button:text('Replay selected')")
    page.locator(".flash").get_by_text("1 dead letter(s) queued again").first.wait_for()
    wait_for(
        lambda: db.execute("SELECT status FROM outbox WHERE id = %s", (disk,)).fetchone() == ("delivered",),
        what="redelivery",
    )
    assert "Disk full on db-1" in emulator_messages(live)
    page.check(f"input[name=ids][value='{dup}']")
    page.click("button:text('Discard selected')")  # without a reason: refused
    assert "reason" in page.locator(".error").inner_text()
    page.go_back()
    page.check(f"input[name=ids][value='{dup}']")
    page.fill("input[name=reason]", "duplicate of INC-42")
    page.click("button:text('Discard selected')")
    page.locator(".flash").get_by_text("1 dead letter(s) discarded").first.wait_for()
    assert db.execute("SELECT status, discard_reason FROM outbox WHERE id = %s", (dup,)).fetchone() == (
        "discarded",
        "duplicate of INC-42",
    )


# --- roles, CSRF, hostile input -----------------------------------------------------------------------------


def test_a_viewer_has_no_save_button_and_gets_403(page: Any, live: Console, db: psycopg.Connection) -> None:
    login(page, VICTOR, VICTOR_PW)
    page.goto("/console/integrations/generic/editor")
    wait_preview(page, "paste a payload")
    assert page.locator("#save").count() == 0
    assert "your role is viewer" in page.locator(".note").inner_text()
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    r = page.request.post(
        "/console/integrations/generic/save", form={"csrf_token": csrf, "source": FIXED, "comment": "x"}
    )
    assert r.status == 403 and "viewer" in r.text()
    page.goto("/console/integrations/generic/versions")
    assert page.locator("button:text('Restore')").count() == 0
    assert db.execute("SELECT count(*) FROM template_versions WHERE integration = 'generic'").fetchone() == (1,)


def test_a_form_post_without_the_csrf_token_is_refused(page: Any, live: Console, db: psycopg.Connection) -> None:
    login(page)
    r = page.request.post("/console/integrations/generic/save", form={"source": FIXED, "comment": "csrf"})
    assert r.status == 403 and "CSRF" in r.text()
    r = page.request.post(
        "/console/integrations/generic/save", form={"source": FIXED, "comment": "csrf", "csrf_token": "forged"}
    )
    assert r.status == 403
    r = page.request.post("/console/login", form={"name": ALICE, "password": ALICE_PW})
    assert r.status == 403  # the login form has one too
    assert db.execute("SELECT count(*) FROM template_versions WHERE integration = 'generic'").fetchone() == (1,)
    # Webhooks are not affected by sessions or CSRF.
    assert live.webhook("generic", {"action": "create", "alias": "a", "message": "m"}).status_code == 202


def test_the_hostile_fixture_stays_inert_text(page: Any, live: Console, screenshot_dir: Path) -> None:
    hostile = (FIXTURES / "hostile" / "template_injection.json").read_bytes()
    stored = live.webhook("alertmanager", hostile).json()["id"]
    # An author name or comment is untrusted too.
    live.api(
        "PUT",
        "/integrations/alertmanager/template",
        json={"source": load_template_source("alertmanager")[1] + "\n", "comment": "<img src=x onerror=alert(7)>"},
    )
    login(page)
    page.goto(f"/console/integrations/alertmanager/editor?inbound={stored}")
    wait_preview(page, "Limit report")
    payload_pane = page.locator("#payload-view").inner_text()
    assert "<script>alert(document.domain)</script>" in payload_pane
    assert "{{ 7*7 }}" in page.locator("#preview").inner_text()
    html = page.content()
    assert "&lt;script&gt;alert(document.domain)&lt;/script&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 2  # htmx and console.js, nothing else
    shot(page, screenshot_dir, "10-hostile-payload")
    # The same payload pasted in the payload pane.
    page.check("input[name=inbound_id][value='']")
    page.fill("#payload", hostile.decode())
    page.locator("#preview").get_by_text("pasted payload").wait_for()
    wait_preview(page, "{{ 7*7 }}")
    page.goto("/console/integrations/alertmanager/versions")
    assert "<img src=x onerror=alert(7)>" in page.locator("table.versions").inner_text()
    page.goto("/console/audit")
    assert page.locator("img").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]


# --- integrations, timeline, export -------------------------------------------------------------------------


def test_create_a_console_integration_and_follow_an_alias(
    page: Any, live: Console, db: psycopg.Connection, screenshot_dir: Path
) -> None:
    login(page)
    page.click("a:text('New integration')")
    page.fill("input[name=name]", "backups")
    page.select_option("select[name=template]", "generic")
    page.check("input[name=target_kind][value=base_url]")
    page.fill("input[name=base_url]", live.emulator.base_url)
    page.fill("input[name=api_key]", "test-genie-key")
    page.select_option("select[name=default_priority]", "P2")
    shot(page, screenshot_dir, "11-new-integration", full=True)
    page.click("button:text('Create integration')")
    token = page.locator("pre.token").inner_text().strip()
    assert token.startswith("whk_")
    shot(page, screenshot_dir, "12-token-shown-once", full=True)
    page.goto("/console/integrations/backups")  # shown once: the integration's page never shows it
    assert page.locator("pre.token").count() == 0 and token not in page.content()
    assert "••••••••" in page.locator("section.card").nth(1).inner_text()

    for body in (
        {"action": "create", "alias": "nightly", "message": "Nightly backup failed"},
        {"action": "close", "alias": "nightly"},
    ):
        r = httpx.post(f"{live.base_url}/webhooks/backups", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 202, r.text
    wait_for(
        lambda: (
            settled(db)
            and db.execute(
                "SELECT count(*) FROM outbox WHERE integration = 'backups' AND status = 'delivered'"
            ).fetchone()
            == (2,)
        ),
        what="deliveries",
    )
    httpx.post(f"{live.base_url}/webhooks/backups", content=b"{not json", headers={"Authorization": f"Bearer {token}"})
    page.click("nav a:text('Integrations')")
    row = page.locator("table.list tbody tr", has_text="backups")
    assert "console" in row.inner_text() and "encrypted in Postgres" in row.inner_text()
    assert [c.strip() for c in row.locator("td.num").all_inner_texts()] == ["2", "1", "0", "0", "0"]
    shot(page, screenshot_dir, "02-integrations")
    page.click("nav a:text('Alias timeline')")
    page.fill("input[name=text]", "Nightly backup")
    page.click("button:text('Find')")
    page.click("table.list a:has-text('nightly')")
    timeline = page.locator("table.timeline").inner_text()
    assert timeline.count("webhook #") == 2 and "closed" in timeline and "HTTP 202" in timeline
    shot(page, screenshot_dir, "13-alias-timeline", full=True)

    page.click("nav a:text('Audit')")
    audit = page.locator("table.audit").inner_text()
    assert "integration.create" in audit and "test-genie-key" not in page.content()
    shot(page, screenshot_dir, "14-audit")
    r = page.request.get("/console/export/integrations.toml")
    assert r.status == 200 and 'name = "backups"' in r.text() and "test-genie-key" not in r.text()
    assert json.loads(json.dumps(page.context.cookies()))  # cookies are plain data


# --- silences -----------------------------------------------------------------------------------------------


def test_create_a_silence_see_it_hold_a_webhook_and_expire_it(
    page: Any, live: Console, db: psycopg.Connection, screenshot_dir: Path
) -> None:
    login(page)
    page.click("nav a:text('Silences')")
    page.wait_for_url("**/console/silences")
    assert "No silence is active or waiting" in page.locator("table.silences").inner_text()
    form = page.locator("form#new-silence")
    form.locator("select[name=integration]").select_option("generic")
    form.locator("input[name=alias]").fill("maint-*")
    form.locator("input[name=duration]").fill("2h")
    form.locator("input[name=comment]").fill("<b>db</b> maintenance")  # stays text
    form.locator("button:text('Create silence')").click()
    page.wait_for_url("**/console/silences")
    assert "created (active)" in page.locator(".flash").inner_text()
    row = page.locator("table.silences tbody tr").first
    assert "active" in row.locator(".silence-state").inner_text()
    assert "maint-*" in row.inner_text() and "<b>db</b> maintenance" in row.inner_text()
    assert page.locator("table.silences b").count() == 0  # autoescaped
    shot(page, screenshot_dir, "15-silences")
    (silence_id,) = db.execute("SELECT id FROM silences").fetchone()  # type: ignore[misc]

    # The next create it matches is recorded and not sent (live in the bridge within a second).
    def decision() -> str:
        r = live.webhook("generic", {"action": "create", "alias": "maint-db", "message": "db down"})
        return str(r.json()["events"][0]["decision"])

    wait_for(lambda: decision() == "suppress", what="the silence")
    assert db.execute("SELECT suppressed FROM aliases WHERE alias = 'maint-db'").fetchone() == (True,)

    # A form that is wrong comes back as typed, with what is wrong.
    form = page.locator("form#new-silence")
    form.locator("input[name=alias]").fill("x")
    form.locator("input[name=every]").fill("someday 1-2")
    form.locator("input[name=comment]").fill("bad window")
    form.locator("button:text('Create silence')").click()
    assert "must look like 'sun 02:00-04:00'" in page.locator("p.error").inner_text()
    assert page.locator("form#new-silence input[name=every]").input_value() == "someday 1-2"

    page.goto("/console/silences")
    page.locator(f"tr#silence-{silence_id} button:text('Expire now')").click()
    page.wait_for_url("**/console/silences")
    assert f"Silence #{silence_id} expired" in page.locator(".flash").inner_text()
    assert page.locator(f"tr#silence-{silence_id}").count() == 0  # over: listed only with "also the ones that are over"
    page.check("input[name=all]")
    page.click("button:text('Show')")
    assert "expired" in page.locator(f"tr#silence-{silence_id} .silence-state").inner_text()
    assert "by alice" in page.locator(f"tr#silence-{silence_id}").inner_text()
    # The alert it withheld still fires: it is sent (by the sweeper or its next firing).
    wait_for(lambda: decision() == "send" or settled(db) and bool(live.emulator.state.list_alerts()), what="release")
    wait_for(lambda: bool(live.emulator.state.list_alerts()), what="the withheld alert in OpsGenie")
    audit = db.execute(
        "SELECT actor, action FROM admin_audit WHERE target = %s ORDER BY id", (f"silence:{silence_id}",)
    )
    assert audit.fetchall() == [("alice", "silence.create"), ("alice", "silence.expire")]


def test_a_viewer_sees_silences_but_no_form_and_no_expire(page: Any, live: Console, db: psycopg.Connection) -> None:
    r = live.api("POST", "/silences", json={"alias": "x-*", "duration": "1h", "comment": "read only check"})
    assert r.status_code == 201
    login(page, VICTOR, VICTOR_PW)
    page.goto("/console/silences")
    assert "read only check" in page.locator("table.silences").inner_text()
    assert page.locator("form#new-silence").count() == 0 and page.locator("button:text('Expire now')").count() == 0
    csrf = json.loads(page.locator("body").get_attribute("hx-headers"))["X-CSRF-Token"]
    r = page.request.post(f"/console/silences/{r.json()['id']}/expire", form={"csrf_token": csrf})
    assert r.status == 403 and "Your role is viewer" in r.text()
    assert db.execute("SELECT expired_at FROM silences").fetchone() == (None,)
