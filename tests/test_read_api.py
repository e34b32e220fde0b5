"""The read API for sources: an integration's token reads its own aliases, never another integration's."""

from __future__ import annotations

import httpx
import psycopg

from alertbridge.config import parse_config
from tests.emulator_server import run_emulator
from tests.harness import API_KEY, TOKEN, config_text, run_bridge, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}
OTHER = "other-integration-token"


def test_read_api(database_url: str, db: psycopg.Connection) -> None:
    extra = f"""
[[integrations]]
name = "other"
template = "generic"
tokens = ["{OTHER}"]
[integrations.target]
base_url = "http://127.0.0.1:9"
api_key = "k"
"""
    with run_emulator(api_keys=[API_KEY], processing_delay=0.01) as emu:
        text = config_text(emu.base_url, integrations=(("generic", "generic"),)) + extra
        with run_bridge(parse_config(text, {}, source="t.toml"), database_url) as bridge:
            base = bridge.base_url
            for i in range(5):
                r = httpx.post(
                    f"{base}/webhooks/generic", json={"alias": f"job-{i}", "message": f"job {i} failed"}, headers=AUTH
                )
                assert r.status_code == 202
            httpx.post(f"{base}/webhooks/generic", json={"action": "acknowledge", "alias": "job-1"}, headers=AUTH)
            httpx.post(f"{base}/webhooks/generic", json={"action": "close", "alias": "job-2"}, headers=AUTH)
            r = httpx.post(
                f"{base}/webhooks/other",
                json={"alias": "theirs", "message": "m"},
                headers={"Authorization": f"Bearer {OTHER}"},
            )
            assert r.status_code == 202
            wait_for(lambda: db.execute("SELECT count(*) FROM outbox WHERE status = 'delivered'").fetchone() == (7,))

            one = httpx.get(f"{base}/api/v1/aliases/generic/job-1", headers=AUTH)
            assert one.status_code == 200
            body = one.json()
            assert (body["state"], body["generation"], body["acknowledged_by"]) == ("acknowledged", 1, "source")
            assert body["opened_at"] and body["acknowledged_at"] and body["closed_at"] is None
            assert {"alert_id", "tiny_id", "closed_by"} <= set(body)
            # With the token in the other forms a source might use.
            assert (
                httpx.get(f"{base}/api/v1/aliases/generic/job-1", headers={"X-Bridge-Token": TOKEN}).status_code == 200
            )
            assert httpx.get(f"{base}/api/v1/aliases/generic/job-1", params={"token": TOKEN}).status_code == 200

            # Scoping: no token, a wrong one, and another integration's.
            assert httpx.get(f"{base}/api/v1/aliases/generic/job-1").status_code == 401
            assert (
                httpx.get(f"{base}/api/v1/aliases/generic/job-1", headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )
            assert httpx.get(f"{base}/api/v1/aliases/other/theirs", headers=AUTH).status_code == 403
            assert httpx.get(f"{base}/api/v1/aliases", params={"integration": "other"}, headers=AUTH).status_code == 403
            assert httpx.get(f"{base}/api/v1/aliases/generic/nope", headers=AUTH).status_code == 404

            # Listing, paged; only the token's own integration.
            seen, cursor = [], None
            while True:
                params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
                page = httpx.get(f"{base}/api/v1/aliases", params=params, headers=AUTH).json()
                seen += [(a["integration"], a["alias"]) for a in page["aliases"]]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            assert seen == [("generic", f"job-{i}") for i in range(5)]
            closed = httpx.get(f"{base}/api/v1/aliases", params={"state": "closed"}, headers=AUTH).json()
            assert [a["alias"] for a in closed["aliases"]] == ["job-2"]
            future = httpx.get(f"{base}/api/v1/aliases", params={"since": "2999-01-01T00:00:00Z"}, headers=AUTH).json()
            assert future == {"aliases": []}
            for bad in (
                {"state": "sleeping"},
                {"limit": "0"},
                {"since": "yesterday"},
                {"since": "2026-01-01T00:00:00"},
                {"cursor": "%%%"},
            ):
                r = httpx.get(f"{base}/api/v1/aliases", params=bad, headers=AUTH)
                assert r.status_code == 400 and r.json()["error"] == "bad_request", bad
