import type { Migration } from '../store/database.js';

/**
 * The engine's state. Three layers, as the incumbent names them:
 *  - cs_objects: each source connector's connector space (staged copy + pending import change)
 *  - mv_objects: the metaverse (joined identity view), with a pending-export flag
 *  - export_objects: the cloud connector space (what was last exported, and where)
 * Group membership is kept as rows (cs_members by member DN, mv_members by metaverse id) so that a
 * member's change can find the groups that reference it without scanning every group.
 */
export const engineMigrations: Migration[] = [
  {
    id: 'engine/001',
    sql: `
CREATE TABLE cs_objects (
  connector   TEXT NOT NULL,
  anchor      TEXT NOT NULL,
  object_type TEXT NOT NULL,
  dn          TEXT NOT NULL,
  dn_norm     TEXT NOT NULL,
  attrs       TEXT NOT NULL,
  hash        TEXT NOT NULL,
  pending     TEXT,            -- 'add' | 'update' | 'delete' | NULL
  mv_id       INTEGER,
  PRIMARY KEY (connector, anchor)
) WITHOUT ROWID;
CREATE INDEX cs_objects_dn ON cs_objects (connector, dn_norm);
CREATE INDEX cs_objects_pending ON cs_objects (connector, pending) WHERE pending IS NOT NULL;
CREATE INDEX cs_objects_mv ON cs_objects (mv_id);

CREATE TABLE cs_members (
  connector    TEXT NOT NULL,
  group_anchor TEXT NOT NULL,
  member_dn    TEXT NOT NULL,   -- normalised DN
  PRIMARY KEY (connector, group_anchor, member_dn)
) WITHOUT ROWID;
CREATE INDEX cs_members_member ON cs_members (connector, member_dn);

CREATE TABLE mv_objects (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  object_type    TEXT NOT NULL,
  source_anchor  TEXT NOT NULL,     -- the anchor that projected it: the cloud object's externalId
  attrs          TEXT NOT NULL,
  deleted        INTEGER NOT NULL DEFAULT 0,
  pending_export INTEGER NOT NULL DEFAULT 0,
  updated_at     TEXT NOT NULL
);
CREATE INDEX mv_objects_pending ON mv_objects (pending_export) WHERE pending_export = 1;
CREATE INDEX mv_objects_anchor ON mv_objects (source_anchor);

CREATE TABLE mv_members (
  group_id  INTEGER NOT NULL,
  member_id INTEGER NOT NULL,
  PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX mv_members_member ON mv_members (member_id);

CREATE TABLE export_objects (
  mv_id         INTEGER PRIMARY KEY,
  object_type   TEXT NOT NULL,
  cloud_id      TEXT,
  exported_hash TEXT,
  last_error    TEXT,
  updated_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX export_objects_cloud ON export_objects (cloud_id) WHERE cloud_id IS NOT NULL;

CREATE TABLE runs (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  profile    TEXT NOT NULL,
  status     TEXT NOT NULL,        -- running | success | completed-with-errors | failed | interrupted
  started_at TEXT NOT NULL,
  ended_at   TEXT,
  pid        INTEGER,
  error      TEXT                  -- JSON {code, message, hint}
);
CREATE TABLE run_steps (
  run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  seq       INTEGER NOT NULL,
  connector TEXT NOT NULL,
  step      TEXT NOT NULL,         -- import | sync | export
  status    TEXT NOT NULL,
  adds      INTEGER NOT NULL DEFAULT 0,
  updates   INTEGER NOT NULL DEFAULT 0,
  deletes   INTEGER NOT NULL DEFAULT 0,
  unchanged INTEGER NOT NULL DEFAULT 0,
  errors    INTEGER NOT NULL DEFAULT 0,
  started_at TEXT NOT NULL,
  ended_at   TEXT,
  PRIMARY KEY (run_id, seq)
);
CREATE TABLE run_errors (
  run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  connector TEXT NOT NULL,
  step      TEXT NOT NULL,
  object    TEXT,                  -- DN or anchor
  code      TEXT NOT NULL,
  message   TEXT NOT NULL
);
CREATE INDEX run_errors_run ON run_errors (run_id);
`,
  },
];

engineMigrations.push({
  id: 'engine/002',
  sql: `
CREATE TABLE watermarks (
  connector  TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE engine_state (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
ALTER TABLE run_steps ADD COLUMN profile TEXT;
ALTER TABLE export_objects ADD COLUMN exported_doc TEXT;
`,
});

engineMigrations.push({
  id: 'engine/003',
  // The sync step walks pending objects by type; this partial index keeps that proportional to
  // what changed, not to the size of the connector space.
  sql: `CREATE INDEX cs_objects_pending_type ON cs_objects (object_type, pending) WHERE pending IS NOT NULL;`,
});

engineMigrations.push({
  id: 'engine/004',
  // Soft-match join keys (rules.join): one row per metaverse object and rule, e.g. (user, mail, ann@x).
  sql: `
CREATE TABLE mv_join_keys (
  object_type TEXT NOT NULL,
  rule        TEXT NOT NULL,
  value       TEXT NOT NULL,
  mv_id       INTEGER NOT NULL,
  PRIMARY KEY (object_type, rule, value, mv_id)
) WITHOUT ROWID;
CREATE INDEX mv_join_keys_mv ON mv_join_keys (mv_id);
`,
});

engineMigrations.push({
  id: 'engine/005-members-by-anchor',
  // Group members keyed by the member's anchor where the source names it (AD's extended DN), so a
  // new object that takes over a DN does not inherit the memberships. AD DNs are now compared by
  // Unicode code points (as AD does), and groups hash their member anchors: the next cycle
  // re-reads every source in full and re-stages every object (the cloud sees only real changes).
  sql: `
ALTER TABLE cs_members ADD COLUMN member_anchor TEXT;
CREATE INDEX cs_members_member_anchor ON cs_members (connector, member_anchor) WHERE member_anchor IS NOT NULL;
UPDATE cs_objects SET hash = '';
DELETE FROM watermarks;
`,
});

engineMigrations.push({
  id: 'engine/006-user-lookup-indexes',
  // Password change notifications and agent batches look a user up by anchor (or DN) without
  // knowing the connector (connector-space-users.ts): without these, every look-up scanned
  // cs_objects (≈ 30 notifications/s with 10,000 users). Partial indexes on users only, to keep the
  // engine's writes of groups cheap.
  sql: `
CREATE INDEX IF NOT EXISTS cs_objects_user_anchor ON cs_objects (anchor) WHERE object_type = 'user';
CREATE INDEX IF NOT EXISTS cs_objects_user_dn ON cs_objects (dn_norm) WHERE object_type = 'user';
`,
});

engineMigrations.push({
  id: 'engine/007-mv-changed-since',
  // Readers that follow the metaverse's changes (the console's attribute index, queries.ts
  // `metaverseChangedSince`) walk it by (updated_at, id) instead of scanning every object.
  sql: `CREATE INDEX IF NOT EXISTS mv_objects_updated ON mv_objects (updated_at, id);`,
});

engineMigrations.push({
  id: 'engine/008-cs-objects-by-arrival',
  // The connector space in arrival order (a rowid table), its key in a unique index. Keyed by
  // (connector, anchor) WITHOUT ROWID, each whole row lived at its anchor's place in the key order:
  // AD's objectGUIDs (and any random anchor) put every insert of a first import on a leaf of its
  // own, and each commit wrote all of them — the 100k initial cycle took 18 s with random anchors
  // against 10 s with OpenLDAP's time-ordered entryUUIDs (bench/README.md). Now only the narrow key
  // indexes take the random inserts. The same indexes as before, with the login-name ones that
  // connector-space-users.ts looks up (first made by passwords/001 under these names, which makes
  // them only where they are missing). PostgreSQL's table is a heap already.
  sql: `
CREATE TABLE cs_objects_by_arrival (
  connector   TEXT NOT NULL,
  anchor      TEXT NOT NULL,
  object_type TEXT NOT NULL,
  dn          TEXT NOT NULL,
  dn_norm     TEXT NOT NULL,
  attrs       TEXT NOT NULL,
  hash        TEXT NOT NULL,
  pending     TEXT,
  mv_id       INTEGER
);
INSERT INTO cs_objects_by_arrival (connector, anchor, object_type, dn, dn_norm, attrs, hash, pending, mv_id)
  SELECT connector, anchor, object_type, dn, dn_norm, attrs, hash, pending, mv_id FROM cs_objects;
DROP TABLE cs_objects;
ALTER TABLE cs_objects_by_arrival RENAME TO cs_objects;
CREATE UNIQUE INDEX cs_objects_key ON cs_objects (connector, anchor);
CREATE INDEX cs_objects_dn ON cs_objects (connector, dn_norm);
CREATE INDEX cs_objects_pending ON cs_objects (connector, pending) WHERE pending IS NOT NULL;
CREATE INDEX cs_objects_mv ON cs_objects (mv_id);
CREATE INDEX cs_objects_pending_type ON cs_objects (object_type, pending) WHERE pending IS NOT NULL;
CREATE INDEX cs_objects_user_anchor ON cs_objects (anchor) WHERE object_type = 'user';
CREATE INDEX cs_objects_user_dn ON cs_objects (dn_norm) WHERE object_type = 'user';
CREATE INDEX phs_cs_sam ON cs_objects (lower(json_extract(attrs, '$.samaccountname[0]'))) WHERE object_type = 'user';
CREATE INDEX phs_cs_upn ON cs_objects (lower(json_extract(attrs, '$.userprincipalname[0]'))) WHERE object_type = 'user';
CREATE INDEX phs_cs_uid ON cs_objects (lower(json_extract(attrs, '$.uid[0]'))) WHERE object_type = 'user';
`,
  postgres: 'SELECT 1;',
});

engineMigrations.push({
  id: 'engine/009-tombstones-by-anchor',
  // The metaverse is looked up by source anchor only for a tombstone to revive (sync.ts `tombstoned`,
  // `tombstonedOf`: deleted = 1). Indexing the deleted objects alone keeps every new object's random
  // anchor (AD's objectGUID) out of an index it never needed.
  sql: `
DROP INDEX mv_objects_anchor;
CREATE INDEX mv_objects_tombstone_anchor ON mv_objects (source_anchor) WHERE deleted = 1;
`,
});
