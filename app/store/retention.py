"""Retention SQL: bounded batches, each its own short transaction. Open aliases and their current generation are
never touched: `_LIVE` excludes every row of an alias's current generation while the alias is open or acknowledged.

Each step is (name, what it counts, one batch of its work); a batch affects at most `n` rows, so locks stay short and
ingest keeps going while a large backlog is pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

from alertbridge.db import Connection


def _live(table: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM aliases a WHERE a.integration = {table}.integration AND a.alias = {table}.alias "
        f"AND a.generation = {table}.generation AND a.state <> 'closed')"
    )


@dataclass(frozen=True)
class Step:
    name: str
    cutoff: str  # which cutoff applies: raw_bodies | events | refused
    candidates: str  # SELECT id (or key) ... WHERE <old enough, not protected>; %(cut)s is the cutoff
    work: str  # one batch: %(cut)s and %(n)s

    @property
    def count_sql(self) -> str:
        return f"SELECT count(*) AS n FROM ({self.candidates}) AS c"


def _delete(table: str, key: str, candidates: str) -> str:
    return f"DELETE FROM {table} WHERE {key} IN ({candidates} ORDER BY 1 LIMIT %(n)s)"


_OUTBOX = f"""SELECT o.id FROM outbox o WHERE o.created_at < %(cut)s
    AND o.status IN ('delivered', 'dead', 'skipped') AND NOT {_live("o")}"""
_HISTORY = f"SELECT h.id FROM alias_history h WHERE h.at < %(cut)s AND NOT {_live('h')}"
_CALLBACKS = f"""SELECT c.id FROM callbacks c WHERE c.received_at < %(cut)s
    AND (c.integration IS NULL OR NOT {_live("c")})"""
_INBOUND = """SELECT i.id FROM inbound_events i WHERE i.received_at < %(cut)s
    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.inbound_id = i.id)"""
_GENERATIONS = """SELECT g.ctid FROM generations g WHERE g.state = 'closed' AND g.closed_at < %(cut)s
    AND NOT EXISTS (SELECT 1 FROM aliases a WHERE a.integration = g.integration AND a.alias = g.alias
                    AND a.generation = g.generation AND NOT (a.state = 'closed' AND a.last_seen_at < %(cut)s))"""
_ALIASES = """SELECT a.ctid FROM aliases a WHERE a.state = 'closed' AND a.closed_at < %(cut)s
    AND a.last_seen_at < %(cut)s"""
_BODIES = """SELECT i.id FROM inbound_events i WHERE i.received_at < %(cut)s AND i.body IS NOT NULL"""
_CALLBACK_BODIES = """SELECT c.id FROM callbacks c WHERE c.received_at < %(cut)s AND c.body IS NOT NULL"""
_REFUSED = "SELECT r.ctid FROM refused_webhooks r WHERE r.minute < %(cut)s"

# In order: rows that others point at go last (outbox before inbound_events; generations before aliases).
STEPS = (
    Step(
        "raw webhook bodies",
        "raw_bodies",
        _BODIES,
        f"UPDATE inbound_events SET body = NULL WHERE id IN ({_BODIES} ORDER BY 1 LIMIT %(n)s)",
    ),
    Step(
        "raw callback bodies",
        "raw_bodies",
        _CALLBACK_BODIES,
        f"UPDATE callbacks SET body = NULL WHERE id IN ({_CALLBACK_BODIES} ORDER BY 1 LIMIT %(n)s)",
    ),
    Step("outbox rows and their delivery attempts", "events", _OUTBOX, _delete("outbox", "id", _OUTBOX)),
    Step("alias history", "events", _HISTORY, _delete("alias_history", "id", _HISTORY)),
    Step("callbacks", "events", _CALLBACKS, _delete("callbacks", "id", _CALLBACKS)),
    Step("webhooks (inbound events, replays)", "events", _INBOUND, _delete("inbound_events", "id", _INBOUND)),
    Step("closed generations", "events", _GENERATIONS, _delete("generations", "ctid", _GENERATIONS)),
    Step("closed aliases", "events", _ALIASES, _delete("aliases", "ctid", _ALIASES)),
    Step("refused-webhook counts", "refused", _REFUSED, _delete("refused_webhooks", "ctid", _REFUSED)),
)


async def count(conn: Connection, step: Step, cut: object) -> int:
    cur = await conn.execute(step.count_sql, {"cut": cut})
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def batch(conn: Connection, step: Step, cut: object, n: int) -> int:
    cur = await conn.execute(step.work, {"cut": cut, "n": n})
    return cur.rowcount
