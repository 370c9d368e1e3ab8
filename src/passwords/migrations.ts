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
];
