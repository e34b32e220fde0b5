"""The template preview: a draft (or the active template) + a payload (pasted, or a stored webhook) -> exactly
what ingest would do now: the events, the decision each would get against the current alias state, every
OpsGenie request (method, URL, JSON body) and the limit report. It goes through ingest's own ``prepare`` and the
pure ``plan`` step, reads alias states, and writes nothing: no row, no lock, no request sent."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from alertbridge.admin.errors import Invalid, NotFound
from alertbridge.admin.report import limit_report
from alertbridge.db import Database
from alertbridge.ingest import Inbound, Route, preview
from alertbridge.registry import Registry
from alertbridge.rendering import TemplateError, compile_template
from alertbridge.store import inbound

MAX_PAYLOAD = 1_048_576


def route_of(registry: Registry, name: str) -> Route:
    endpoint = registry.current.endpoints.get(name)
    if endpoint is None:
        raise NotFound(f"integration {name!r} is not served by this process (unknown, or it has no template yet)")
    return endpoint.route


def draft_route(route: Route, source: Any) -> tuple[Route, dict[str, Any] | None]:
    """The route with the draft template, or the compile error (as a dict with kind, message and line)."""
    if source is None:
        return route, None
    if not isinstance(source, str):
        raise Invalid("'source' must be a string (the template text)")
    try:
        template = compile_template(source, route.name)
    except TemplateError as exc:
        return route, exc.to_dict()
    return replace(route, template=template, version_id=None), None


async def message_for(db: Database, name: str, body: dict[str, Any]) -> tuple[Inbound, int | None]:
    """The webhook to preview: a stored one (``inbound_id``), a payload object, or raw body text."""
    if body.get("inbound_id") is not None:
        inbound_id = body["inbound_id"]
        if isinstance(inbound_id, bool) or not isinstance(inbound_id, int):
            raise Invalid("'inbound_id' must be an integer")
        async with db.connection() as conn:
            row = await inbound.get(conn, inbound_id)
        if row is None or row["integration"] != name:
            raise NotFound(f"integration {name!r} has no stored webhook {inbound_id}")
        if row["body"] is None:
            raise Invalid(f"stored webhook {inbound_id} has no body (it was too large, or removed by retention)")
        return (
            Inbound(
                body=bytes(row["body"]),
                content_type=row["content_type"],
                headers=row["headers"],
                query=row["query"],
                remote_addr=row["remote_addr"],
            ),
            inbound_id,
        )
    if "payload" in body:
        text = json.dumps(body["payload"], ensure_ascii=False).encode("utf-8")
    elif isinstance(body.get("body"), str):
        text = body["body"].encode("utf-8", "surrogatepass")
    else:
        raise Invalid("give 'payload' (a JSON object), 'body' (raw text) or 'inbound_id' (a stored webhook)")
    if len(text) > MAX_PAYLOAD:
        raise Invalid(f"the payload is larger than {MAX_PAYLOAD} bytes")
    return Inbound(body=text, content_type="application/json"), None


async def run(db: Database, registry: Registry, name: str, body: dict[str, Any]) -> dict[str, Any]:
    route = route_of(registry, name)
    draft, compile_error = draft_route(route, body.get("source"))
    msg, inbound_id = await message_for(db, name, body)
    out: dict[str, Any] = {
        "integration": name,
        "template": "draft" if body.get("source") is not None else "active",
        "inbound_id": inbound_id,
        "target": route.base_url,
    }
    if compile_error is not None:
        return {**out, "status": "template_error", "error": compile_error, "events": [], "limits": []}
    prepared, plan = await preview(db, draft, msg)
    events = plan.to_dict() if plan is not None else []
    return {
        **out,
        "status": prepared.status.value,
        "error": prepared.error,
        "events": events,
        "limits": limit_report(events),
    }
