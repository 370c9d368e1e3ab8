/**
 * The SQL of the leader lease (PostgreSQL only; docs/ha.md). This module owns two tables:
 *   ha_lease  one row per lease ('sync-leader'): holder, fencing token, expiry by the database's clock
 *   ha_nodes  one row per running node: its role as it last said, for `service status` and /status
 * The row of a lease is never deleted: its token only grows, so a token is never reused.
 */
import type { Migration } from '../../store/database.js';

export const LEADER_LEASE = 'sync-leader';

/** IF NOT EXISTS: installations that ran a version creating these tables at the lease's start keep them. */
const LEASE_DDL = `
CREATE TABLE IF NOT EXISTS ha_lease (
  name            TEXT PRIMARY KEY,
  holder          TEXT NOT NULL,
  node            TEXT NOT NULL,
  token           BIGINT NOT NULL,
  previous_holder TEXT,
  expires_at      TIMESTAMPTZ NOT NULL,
  acquired_at     TIMESTAMPTZ NOT NULL,
  renewed_at      TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS ha_nodes (
  holder     TEXT PRIMARY KEY,
  node       TEXT NOT NULL,
  url        TEXT,
  pid        INTEGER NOT NULL,
  role       TEXT NOT NULL,
  token      BIGINT,
  started_at TIMESTAMPTZ NOT NULL,
  seen_at    TIMESTAMPTZ NOT NULL
);`;

/**
 * The lease's tables, as a migration of the store (applied with the others, once, under the
 * migration lock). PostgreSQL only: on SQLite there is one node and no lease, so its SQLite text is
 * empty (the id is recorded, nothing is created).
 */
export const haMigrations: Migration[] = [{ id: 'ha/001-lease', sql: '', postgres: LEASE_DDL }];

/**
 * Acquire or renew, in one statement. $1 holder, $2 node name, $3 lease time (ms), $4 the token
 * this holder believes it holds (0 for none). The holder keeps its token only while its lease is
 * unexpired and it still believes in it; anyone (itself included) may take an expired lease, and
 * taking it starts a new term: token + 1. Returns no row when another holder's lease is unexpired.
 */
export const ACQUIRE_SQL = `
INSERT INTO ha_lease AS l (name, holder, node, token, previous_holder, expires_at, acquired_at, renewed_at)
VALUES ('${LEADER_LEASE}', $1, $2, 1, NULL, now() + make_interval(secs => $3::float8 / 1000), now(), now())
ON CONFLICT (name) DO UPDATE SET
  token           = CASE WHEN l.holder = $1 AND l.token = $4 AND l.expires_at > now() THEN l.token ELSE l.token + 1 END,
  acquired_at     = CASE WHEN l.holder = $1 AND l.token = $4 AND l.expires_at > now() THEN l.acquired_at ELSE now() END,
  previous_holder = CASE WHEN l.holder = $1 AND l.token = $4 AND l.expires_at > now() THEN l.previous_holder ELSE l.holder END,
  holder = $1, node = $2, expires_at = excluded.expires_at, renewed_at = now()
WHERE (l.holder = $1 AND l.token = $4 AND l.expires_at > now()) OR l.expires_at <= now()
RETURNING token::float8 AS token, previous_holder, expires_at, acquired_at,
  (extract(epoch FROM expires_at - now()) * 1000)::float8 AS remaining_ms`;

/**
 * The holder renews its term ($1 holder, $2 token, $3 lease time in ms): only while unexpired. It
 * changes no key column, so it takes a lock that the fence of the holder's own write transactions
 * (FOR KEY SHARE) does not block: a long transaction of the leader does not stop its renewals.
 */
export const RENEW_SQL = `
UPDATE ha_lease SET expires_at = now() + make_interval(secs => $3::float8 / 1000), renewed_at = now()
WHERE name = '${LEADER_LEASE}' AND holder = $1 AND token = $2 AND expires_at > now()
RETURNING token::float8 AS token, (extract(epoch FROM expires_at - now()) * 1000)::float8 AS remaining_ms`;

/**
 * A takeover locks the row FOR UPDATE first, in the transaction of the upsert: that waits for every
 * write transaction of the old holder that already passed its fence (FOR KEY SHARE), so none of
 * them can commit after the new term began.
 */
export const TAKEOVER_LOCK_SQL = `SELECT 1 FROM ha_lease WHERE name = '${LEADER_LEASE}' FOR UPDATE`;

/** Who holds the lease now (expired or not). */
export const LEASE_ROW_SQL = `
SELECT holder, node, token::float8 AS token, expires_at, acquired_at, renewed_at, expires_at > now() AS live
FROM ha_lease WHERE name = '${LEADER_LEASE}'`;

/** A holder that stops cleanly ends its lease at once, so a standby need not wait for it to expire. */
export const RELEASE_SQL = `UPDATE ha_lease SET expires_at = now() WHERE name = '${LEADER_LEASE}' AND holder = $1 AND token = $2`;

/** The fence of a write transaction ($1 holder, $2 token): see WriteFence.check in store/fence.ts. */
export const FENCE_CHECK_SQL = `SELECT 1 AS held FROM ha_lease WHERE name = '${LEADER_LEASE}' AND holder = $1 AND token = $2 FOR KEY SHARE`;

/** A node says it is alive and what it is: $1 holder, $2 node, $3 url, $4 pid, $5 role, $6 token. */
export const NODE_HEARTBEAT_SQL = `
INSERT INTO ha_nodes (holder, node, url, pid, role, token, started_at, seen_at) VALUES ($1, $2, $3, $4, $5, $6, now(), now())
ON CONFLICT (holder) DO UPDATE SET url = excluded.url, role = excluded.role, token = excluded.token, seen_at = now()`;

export const NODE_GONE_SQL = `DELETE FROM ha_nodes WHERE holder = $1`;

/** Nodes not heard of for a day are forgotten. */
export const NODES_PRUNE_SQL = `DELETE FROM ha_nodes WHERE seen_at < now() - interval '1 day'`;

/** Every node heard of in the last ten minutes, with the seconds since it last said so (by the database's clock). */
export const NODES_SQL = `
SELECT holder, node, url, pid, role, token::float8 AS token, started_at, seen_at,
  (extract(epoch FROM now() - seen_at))::float8 AS silent_seconds
FROM ha_nodes WHERE seen_at > now() - interval '10 minutes' ORDER BY node, started_at`;
