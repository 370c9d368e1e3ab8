/**
 * Password hash sync state in idsync.db. No table holds a password, an NT hash or a readable OrgId
 * hash: hashes are AES-256-GCM sealed (keys.ts), NT hashes are kept only as keyed fingerprints.
 */
import type { Migration } from '../store/database.js';

export const passwordMigrations: Migration[] = [
  {
    id: 'passwords/001',
    sql: `
-- The durable outbox: one row per user (the cloud externalId), the latest change wins.
-- A row is deleted only after the cloud answered Success for its version.
CREATE TABLE phs_outbox (
  anchor          TEXT PRIMARY KEY,
  connector       TEXT NOT NULL,
  hash_ct         BLOB NOT NULL,
  hash_iv         BLOB NOT NULL,
  hash_tag        BLOB NOT NULL,
  key_id          TEXT NOT NULL,
  changed_at      TEXT NOT NULL,      -- ISO time of the change at the source
  queued_at       TEXT NOT NULL,
  version         INTEGER NOT NULL DEFAULT 1,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,   -- epoch ms
  last_error      TEXT,               -- code: TargetNotExported, CLOUD_AUTH_FAILED, ...
  source          TEXT
) WITHOUT ROWID;
CREATE INDEX phs_outbox_due ON phs_outbox (next_attempt_at);

-- What we last knew per user: the sealed OrgId hash (for a full resync without the source) and the
-- keyed fingerprint of the NT hash (to enqueue only real changes from polling sources).
CREATE TABLE phs_state (
  connector   TEXT NOT NULL,
  anchor      TEXT NOT NULL,
  nt_fp       BLOB,
  hash_ct     BLOB,
  hash_iv     BLOB,
  hash_tag    BLOB,
  key_id      TEXT,
  changed_at  TEXT,
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (connector, anchor)
) WITHOUT ROWID;
CREATE INDEX phs_state_anchor ON phs_state (anchor);

-- Per-user history (Queued / Success / Error / TargetNotExported), kept 7 days.
CREATE TABLE phs_status (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  anchor    TEXT NOT NULL,
  connector TEXT,
  status    TEXT NOT NULL,
  reason    TEXT,
  source    TEXT,
  at        TEXT NOT NULL
);
CREATE INDEX phs_status_anchor ON phs_status (anchor, id);
CREATE INDEX phs_status_at ON phs_status (at);

-- Look-ups of a user by the names people type (PCN, "passwords status"), without a table scan.
CREATE INDEX IF NOT EXISTS phs_cs_sam ON cs_objects (lower(json_extract(attrs, '$.samaccountname[0]'))) WHERE object_type = 'user';
CREATE INDEX IF NOT EXISTS phs_cs_upn ON cs_objects (lower(json_extract(attrs, '$.userprincipalname[0]'))) WHERE object_type = 'user';
CREATE INDEX IF NOT EXISTS phs_cs_uid ON cs_objects (lower(json_extract(attrs, '$.uid[0]'))) WHERE object_type = 'user';
`,
  },
  {
    // MS-DRSR replication state of `passwords: { source: drs }`: where the next incremental
    // GetNCChanges resumes. Written only after the hashes of the pages it covers are queued.
    id: 'passwords/drs-001-replication-state',
    sql: `
CREATE TABLE phs_drs_state (
  connector     TEXT PRIMARY KEY,
  invocation_id TEXT NOT NULL,        -- the source DC's invocationId: USNs mean nothing on another DC
  state         TEXT NOT NULL,        -- JSON: high-water mark and up-to-dateness vector (USNs as strings)
  full_done_at  TEXT,                 -- when the last full pass completed
  updated_at    TEXT NOT NULL
) WITHOUT ROWID;
`,
  },
  {
    // "Queued" without a row of its own (status.ts): each outcome the delivery records carries
    // when its change was queued; while a change waits, its outbox row says so.
    id: 'passwords/intake-002-status-queued-at',
    sql: `ALTER TABLE phs_status ADD COLUMN queued_at TEXT;`,
  },
  {
    // One row per user instead of two (issue 13): phs_state and phs_outbox held the same sealed
    // hash, so every change wrote four B-trees (two tables, two indexes): with anchors in random
    // order (objectGUIDs) that is four random pages a change. phs_users holds what is known of the
    // user and, while a change waits for the cloud, its delivery (next_attempt_at not NULL); the
    // partial index lists only those. Keyed (anchor, connector): the anchor is the cloud
    // externalId, and look-ups by it alone need no second index.
    id: 'passwords/intake-003-one-row-per-user',
    sql: `
CREATE TABLE phs_users (
  anchor          TEXT NOT NULL,
  connector       TEXT NOT NULL,
  nt_fp           BLOB,               -- keyed fingerprint of the last NT hash (polling sources)
  hash_ct         BLOB,               -- the last known OrgId hash, sealed (keys.ts)
  hash_iv         BLOB,
  hash_tag        BLOB,
  key_id          TEXT,
  changed_at      TEXT,               -- ISO time of that change at the source
  updated_at      TEXT NOT NULL,
  -- The delivery of that hash, while it waits (next_attempt_at NOT NULL); kept as it was after.
  queued_at       TEXT,
  version         INTEGER NOT NULL DEFAULT 0,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,            -- epoch ms; NULL: nothing waits
  last_error      TEXT,
  source          TEXT,
  PRIMARY KEY (anchor, connector)
) WITHOUT ROWID;
INSERT INTO phs_users (anchor, connector, nt_fp, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at)
  SELECT anchor, connector, nt_fp, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at FROM phs_state;
-- What waits: its hash is the newest known (both tables were written together), unless the state is newer.
INSERT INTO phs_users (anchor, connector, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at, queued_at, version, attempts, next_attempt_at, last_error, source)
  SELECT anchor, connector, hash_ct, hash_iv, hash_tag, key_id, changed_at, queued_at, queued_at, version, attempts, next_attempt_at, last_error, source
  FROM phs_outbox WHERE true
  ON CONFLICT (anchor, connector) DO UPDATE SET
    hash_ct    = CASE WHEN phs_users.changed_at IS NULL OR excluded.changed_at >= phs_users.changed_at THEN excluded.hash_ct ELSE phs_users.hash_ct END,
    hash_iv    = CASE WHEN phs_users.changed_at IS NULL OR excluded.changed_at >= phs_users.changed_at THEN excluded.hash_iv ELSE phs_users.hash_iv END,
    hash_tag   = CASE WHEN phs_users.changed_at IS NULL OR excluded.changed_at >= phs_users.changed_at THEN excluded.hash_tag ELSE phs_users.hash_tag END,
    key_id     = CASE WHEN phs_users.changed_at IS NULL OR excluded.changed_at >= phs_users.changed_at THEN excluded.key_id ELSE phs_users.key_id END,
    changed_at = CASE WHEN phs_users.changed_at IS NULL OR excluded.changed_at >= phs_users.changed_at THEN excluded.changed_at ELSE phs_users.changed_at END,
    queued_at = excluded.queued_at, version = excluded.version, attempts = excluded.attempts,
    next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error, source = excluded.source;
DROP TABLE phs_outbox;
DROP TABLE phs_state;
CREATE INDEX phs_users_due ON phs_users (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
`,
  },
  {
    // phs_users as a table in arrival order with its key in a separate unique index (issue 13),
    // instead of a B-tree of whole rows keyed by the anchor. Anchors come in random order
    // (objectGUIDs), so a user's first row landed on a random page of ~300-byte rows, splitting
    // one every few inserts (2.1 pages written a new user at 256 a transaction, 2.75 at 4); now
    // the row is appended and only a ~40-byte index entry lands at random (1.0 and 2.1).
    // Measured (bench/README.md): 6–7 µs less CPU a new user, 1–6 µs less a known one.
    // PostgreSQL's tables already are heaps with the key in an index: nothing to do there.
    id: 'passwords/intake-004-rows-in-arrival-order',
    sql: `
CREATE TABLE phs_users_by_arrival (
  anchor          TEXT NOT NULL,
  connector       TEXT NOT NULL,
  nt_fp           BLOB,               -- keyed fingerprint of the last NT hash (polling sources)
  hash_ct         BLOB,               -- the last known OrgId hash, sealed (keys.ts)
  hash_iv         BLOB,
  hash_tag        BLOB,
  key_id          TEXT,
  changed_at      TEXT,               -- ISO time of that change at the source
  updated_at      TEXT NOT NULL,
  -- The delivery of that hash, while it waits (next_attempt_at NOT NULL); kept as it was after.
  queued_at       TEXT,
  version         INTEGER NOT NULL DEFAULT 0,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,            -- epoch ms; NULL: nothing waits
  last_error      TEXT,
  source          TEXT
);
INSERT INTO phs_users_by_arrival (anchor, connector, nt_fp, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at, queued_at, version, attempts, next_attempt_at, last_error, source)
  SELECT anchor, connector, nt_fp, hash_ct, hash_iv, hash_tag, key_id, changed_at, updated_at, queued_at, version, attempts, next_attempt_at, last_error, source
  FROM phs_users;
DROP TABLE phs_users;
ALTER TABLE phs_users_by_arrival RENAME TO phs_users;
CREATE UNIQUE INDEX phs_users_key ON phs_users (anchor, connector);
CREATE INDEX phs_users_due ON phs_users (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
`,
    postgres: 'SELECT 1;',
  },
];
