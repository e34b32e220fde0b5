"""POST /callbacks/opsgenie (and /callbacks/opsgenie/{integration}): OpsGenie's / JSM's outgoing "Webhook"
integration tells us what responders did. OpsGenie cannot sign callbacks, so they are authenticated by a token
(`[callbacks] tokens`) in the X-Bridge-Token header (a custom header on their side), a bearer token or ?token=."""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from alertbridge import callbacks
from alertbridge.config import CallbacksConfig
from alertbridge.core.callbacks import Echoes
from alertbridge.db import Database, is_unavailable
from alertbridge.web.auth import supplied_tokens, token_matches
from alertbridge.web.webhooks import error, read_capped

log = logging.getLogger("alertbridge.callbacks")

CALLBACK_ROUTE = "callbacks/opsgenie"


async def receive_callback(request: Request) -> JSONResponse:
    config: CallbacksConfig = request.app.state.callbacks
    db: Database = request.app.state.db
    remote = request.client.host if request.client else None
    integration = request.path_params.get("integration")
    tokens = tuple(str(t).encode() for t in config.tokens)
    if not tokens or not token_matches(tokens, supplied_tokens(request, "x-bridge-token")):
        request.app.state.refused.add(CALLBACK_ROUTE, remote, "unauthorized")
        hint = "" if tokens else " (no [callbacks] tokens are configured, so every callback is refused)"
        return error(
            401, "unauthorized", "missing or wrong callback token: send it in the X-Bridge-Token header" + hint
        )
    try:
        body = await read_capped(request, request.app.state.max_body_bytes)
        if body is None:
            return error(413, "body_too_large", f"body is larger than {request.app.state.max_body_bytes} bytes")
        result = await callbacks.receive(
            db,
            body,
            content_type=request.headers.get("content-type"),
            integration=integration,
            echoes=Echoes(frozenset(config.echo_users), frozenset(config.echo_sources)),
            remote_addr=remote,
        )
    except ClientDisconnect:
        return error(400, "client_disconnected", "the client went away before the body was complete")
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("database unavailable; answering 503 to a callback")
            return error(503, "database_unavailable", "the database is unavailable; nothing was stored: retry later")
        log.exception("unexpected error while handling a callback")
        return error(500, "internal_error", "unexpected error; nothing was stored; see the bridge's log")
    return JSONResponse(result.body, status_code=result.status)
