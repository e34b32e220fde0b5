"""the `audit` schema: documented, read-only views for auditors (alerts, alias_timeline, deliveries,
failed_webhooks, mtta_mttr), every view and column commented

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# name -> (SELECT, comment on the view, {column: comment}). The columns are exactly the SELECT's, in order.
VIEWS: dict[str, tuple[str, str, dict[str, str]]] = {
    "alerts": (
        """
        SELECT g.integration, g.alias, g.generation, g.opsgenie_alias, g.alert_id, g.tiny_id, g.priority, g.message,
               g.source_started_at AS started_at, g.opened_at,
               g.first_acknowledged_at AS acknowledged_at, g.first_acknowledged_by AS acknowledged_by,
               g.closed_at, g.closed_by, g.closed_in_opsgenie, g.occurrences, g.state
        FROM public.generations g
        """,
        "One row per OpsGenie alert the bridge opened: (integration, alias, generation). An alias opens a new "
        "generation (a new OpsGenie alert) each time it fires after a close.",
        {
            "integration": "The integration (webhook source) the alert came from: /webhooks/<integration>.",
            "alias": "The alias as the payload template rendered it (the bridge's key for the alert).",
            "generation": "1 for the alias's first OpsGenie alert, +1 each time it fires again after a close.",
            "opsgenie_alias": "The alias sent to OpsGenie (scoped as '<integration>:<alias>' unless scope_aliases = "
            "false, and fitted to 512 characters).",
            "alert_id": "OpsGenie's alertId, once known (from request status or a callback).",
            "tiny_id": "OpsGenie's short id, shown to responders as '#1234', once known (from a callback).",
            "priority": "P1..P5 as sent with the create (NULL: none sent, OpsGenie applied P3).",
            "message": "The alert message as sent with the create (after OpsGenie's 130-character limit).",
            "started_at": "When the source says the problem began (e.g. Alertmanager's startsAt), if the template "
            "gives it.",
            "opened_at": "When the webhook that opened this generation was received by the bridge.",
            "acknowledged_at": "The first acknowledgement: by the source (through the bridge) or by a person in "
            "OpsGenie (callback).",
            "acknowledged_by": "Who acknowledged first: 'source' (the webhook's sender, through the bridge) or the "
            "OpsGenie user a callback named.",
            "closed_at": "When the alert was closed (by the source through the bridge, or in OpsGenie).",
            "closed_by": "Who closed it: 'source' or the OpsGenie user a callback named.",
            "closed_in_opsgenie": "True when a person closed or deleted the alert in OpsGenie (not the source).",
            "occurrences": "Create events the source sent for this alert (OpsGenie counts repeats the same way).",
            "state": "open | acknowledged | closed, as the bridge knows it now.",
        },
    ),
    "alias_timeline": (
        """
        SELECT h.integration, h.alias, h.generation, h.at,
               CASE h.origin WHEN 'webhook' THEN 'decision' ELSE h.origin END AS kind,
               CASE h.origin
                 WHEN 'webhook' THEN h.action || ': ' || h.decision || ' (' || h.reason || ')'
                   || CASE WHEN h.from_state IS DISTINCT FROM h.to_state
                           THEN ', ' || COALESCE(h.from_state, 'new') || ' -> ' || COALESCE(h.to_state, '-')
                           ELSE '' END
                 ELSE h.action || ' by ' || COALESCE(h.actor, '?') || ': ' || h.reason
                   || CASE WHEN h.from_state IS DISTINCT FROM h.to_state
                           THEN ', ' || COALESCE(h.from_state, '-') || ' -> ' || COALESCE(h.to_state, '-')
                           ELSE '' END
               END AS summary,
               h.inbound_id, h.outbox_id, h.callback_id, NULL::bigint AS attempt_id
        FROM public.alias_history h
        UNION ALL
        SELECT DISTINCT ON (h.integration, h.alias, i.id)
               h.integration, h.alias, h.generation, i.received_at, 'webhook',
               'webhook #' || i.id || ' received from ' || COALESCE(i.remote_addr, '?') || ': ' || i.status
                 || CASE WHEN i.current_status <> i.status THEN ' (now ' || i.current_status || ' after replay)'
                         ELSE '' END,
               i.id, NULL, NULL, NULL
        FROM public.alias_history h JOIN public.inbound_events i ON i.id = h.inbound_id
        UNION ALL
        SELECT o.integration, o.alias, o.generation, a.started_at,
               CASE a.kind WHEN 'send' THEN 'send' ELSE 'status_check' END,
               a.method || ' ' || a.url || ' -> ' || COALESCE(a.http_status::text, 'no answer') || ' ' || a.outcome
                 || ': ' || a.reason,
               o.inbound_id, o.id, NULL, a.id
        FROM public.delivery_attempts a JOIN public.outbox o ON o.id = a.outbox_id
        UNION ALL
        SELECT o.integration, o.alias, o.generation, o.opsgenie_processed_at, 'opsgenie',
               'OpsGenie ' || CASE WHEN o.opsgenie_success THEN 'processed' ELSE 'failed' END || ' the '
                 || o.action || ': ' || COALESCE(o.opsgenie_status, '?'),
               o.inbound_id, o.id, NULL, NULL
        FROM public.outbox o WHERE o.opsgenie_processed_at IS NOT NULL
        """,
        "Everything that happened to an alias, one row each, across generations: webhooks received, the bridge's "
        "decisions, every HTTP call to OpsGenie and its answer, what OpsGenie finally did, callbacks, console "
        "actions and policies. ORDER BY at (and kind) to read it in order.",
        {
            "integration": "The integration (webhook source).",
            "alias": "The alias as the template rendered it.",
            "generation": "Which OpsGenie alert of the alias (see audit.alerts).",
            "at": "When it happened.",
            "kind": "webhook | decision | send | status_check | opsgenie | callback | console | policy.",
            "summary": "What happened, in one readable line.",
            "inbound_id": "The webhook (inbound_events.id) involved, if any.",
            "outbox_id": "The event row (outbox.id) involved, if any; join audit.deliveries on it.",
            "callback_id": "The OpsGenie callback (callbacks.id) involved, if any.",
            "attempt_id": "The HTTP call (delivery_attempts.id) for send and status_check rows.",
        },
    ),
    "deliveries": (
        """
        SELECT a.id AS attempt_id, o.id AS outbox_id, o.inbound_id, o.integration, o.alias, o.generation, o.action,
               a.attempt, a.kind, a.method, a.url, o.payload AS sent, a.started_at, a.latency_ms, a.http_status,
               a.outcome, a.reason AS answer, a.request_id, a.worker,
               o.status AS event_status, o.attempts AS event_attempts, o.last_error AS event_last_error,
               o.opsgenie_success, o.opsgenie_status
        FROM public.delivery_attempts a JOIN public.outbox o ON o.id = a.outbox_id
        """,
        "Every HTTP call the bridge made to OpsGenie / JSM: what was sent, when, how long it took, what OpsGenie "
        "answered, and what became of the event (delivered, retried, dead).",
        {
            "attempt_id": "The call (delivery_attempts.id).",
            "outbox_id": "The event it delivers (outbox.id); several calls share one when retried.",
            "inbound_id": "The webhook the event came from.",
            "integration": "The integration (webhook source).",
            "alias": "The alias as the template rendered it.",
            "generation": "Which OpsGenie alert of the alias.",
            "action": "create | acknowledge | close | note.",
            "attempt": "1 for the first try of the event, 2 for the first retry, ...",
            "kind": "send (the action itself) or status_check (asking OpsGenie whether it processed the create "
            "before an ack/close/note: not a second send).",
            "method": "HTTP method.",
            "url": "The URL called (the API key is never part of it).",
            "sent": "The OpsGenie body fields of the event, after OpsGenie's limits (no credentials).",
            "started_at": "When the call started.",
            "latency_ms": "How long until the answer (or the timeout) in milliseconds.",
            "http_status": "OpsGenie's HTTP status (NULL: no answer: timeout or connection error).",
            "outcome": "delivered | retry | config_error | rejected | waiting | confirmed: how the bridge read the "
            "answer.",
            "answer": "OpsGenie's answer (its error text), or why the call failed.",
            "request_id": "OpsGenie's requestId, to look the request up in OpsGenie.",
            "worker": "The worker process that made the call.",
            "event_status": "Where the event is now: pending | in_flight | delivered | dead | skipped.",
            "event_attempts": "Calls made for the event so far.",
            "event_last_error": "The last failure of the event, if any.",
            "opsgenie_success": "What OpsGenie finally did with the request (it processes asynchronously): true, "
            "false, or NULL when not known.",
            "opsgenie_status": "OpsGenie's processing result, e.g. 'Closed alert' or 'Alert does not exist'.",
        },
    ),
    "failed_webhooks": (
        """
        SELECT CASE i.status WHEN 'invalid' THEN 'body_error' ELSE i.status END AS kind, i.integration,
               i.received_at AS at, i.remote_addr, 1 AS count, i.error->>'message' AS message,
               CASE WHEN jsonb_typeof(i.error->'line') = 'number' THEN (i.error->>'line')::int END AS line,
               i.id AS inbound_id, i.current_status, i.replay_count,
               (SELECT min(r.at) FROM public.inbound_replays r
                WHERE r.inbound_id = i.id AND r.status = 'processed') AS fixed_at
        FROM public.inbound_events i
        WHERE i.status NOT IN ('processed', 'handshake')
        UNION ALL
        SELECT r.reason, r.integration, r.minute, r.remote_addr, r.count, NULL, NULL, NULL, NULL, NULL, NULL
        FROM public.refused_webhooks r
        """,
        "Webhooks that did not become alerts: stored ones whose body or template failed (with their replays), and "
        "refused ones (bad token, bad signature, unknown integration), counted per minute and remote address.",
        {
            "kind": "body_error | template_error | payload_error | too_large (stored, replayable) or "
            "unauthorized | bad_signature | unknown_integration (refused, nothing stored).",
            "integration": "The integration named in the URL (for refused ones it may not exist).",
            "at": "When it was received (refused ones: the minute).",
            "remote_addr": "The sender's address.",
            "count": "1 for a stored webhook; for refused ones, how many in that minute from that address.",
            "message": "What was wrong (stored ones).",
            "line": "The template line of a template error, when known.",
            "inbound_id": "The stored webhook (inbound_events.id); NULL for refused ones.",
            "current_status": "Its status now: 'processed' once a replay fixed it.",
            "replay_count": "How many times it was replayed.",
            "fixed_at": "When a replay first processed it (NULL: still failing).",
        },
    ),
    "mtta_mttr": (
        """
        WITH a AS (
            SELECT integration, COALESCE(priority, 'P3') AS priority, (opened_at AT TIME ZONE 'UTC')::date AS day,
                   extract(epoch FROM COALESCE(first_acknowledged_at, closed_at) - opened_at) AS tta,
                   extract(epoch FROM closed_at - opened_at) AS ttr,
                   extract(epoch FROM COALESCE(first_acknowledged_at, closed_at) - source_started_at) AS tta_start,
                   extract(epoch FROM closed_at - source_started_at) AS ttr_start
            FROM public.generations
        )
        SELECT integration, priority, day, count(*) AS alerts,
               count(tta) AS acknowledged,
               avg(tta)::float8 AS mtta_seconds,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY tta) AS tta_p50_seconds,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY tta) AS tta_p90_seconds,
               count(ttr) AS closed,
               avg(ttr)::float8 AS mttr_seconds,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ttr) AS ttr_p50_seconds,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY ttr) AS ttr_p90_seconds,
               avg(tta_start)::float8 AS mtta_from_start_seconds,
               avg(ttr_start)::float8 AS mttr_from_start_seconds
        FROM a GROUP BY integration, priority, day
        """,
        "Time to acknowledge and to close per integration, priority and day (UTC day the alert opened), computed "
        "the way OpsGenie's reports do: time to acknowledge = first acknowledgement - creation, and an alert closed "
        "without an acknowledgement counts its close as the acknowledgement; only closed alerts count for time to "
        "close. Creation is when the bridge opened the alert. The *_from_start columns measure the same from the "
        "source's own start time (started_at in audit.alerts) where the template gives one.",
        {
            "integration": "The integration (webhook source).",
            "priority": "P1..P5 (alerts sent without a priority count as P3, as OpsGenie applies).",
            "day": "The UTC day the alerts opened.",
            "alerts": "Alerts opened that day.",
            "acknowledged": "Of those, acknowledged or closed (the ones time to acknowledge is measured for).",
            "mtta_seconds": "Mean time to acknowledge, seconds.",
            "tta_p50_seconds": "Median time to acknowledge, seconds.",
            "tta_p90_seconds": "90th percentile of time to acknowledge, seconds.",
            "closed": "Of those, closed (the ones time to close is measured for).",
            "mttr_seconds": "Mean time to close (resolve), seconds.",
            "ttr_p50_seconds": "Median time to close, seconds.",
            "ttr_p90_seconds": "90th percentile of time to close, seconds.",
            "mtta_from_start_seconds": "Mean time from the source's start time to acknowledgement, seconds.",
            "mttr_from_start_seconds": "Mean time from the source's start time to close, seconds.",
        },
    ),
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS audit")
    op.execute(_quote_schema_comment())
    for name, (select, comment, columns) in VIEWS.items():
        op.execute(f"CREATE OR REPLACE VIEW audit.{name} AS {select}")
        op.execute(f"COMMENT ON VIEW audit.{name} IS {_quote(comment)}")
        for column, text in columns.items():
            op.execute(f"COMMENT ON COLUMN audit.{name}.{column} IS {_quote(text)}")


def _quote_schema_comment() -> str:
    return "COMMENT ON SCHEMA audit IS " + _quote(
        "alertbridge's audit views: read-only, documented in docs/audit.md; `alertbridge audit grant ROLE` "
        "gives a role these and nothing else."
    )


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS audit.{name}")
    op.execute("DROP SCHEMA IF EXISTS audit")
