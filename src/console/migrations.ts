/**
 * The console's tables.
 *
 * console/001 (shipped, never edited) kept an attribute index by SQLite triggers on mv_objects:
 * about 12 µs of the sync's CPU per metaverse object, and SQLite only. console/002 drops the
 * triggers and that table for console_attr_index, an asynchronous projection the console keeps in
 * application code (attr-index.ts); it starts empty and catches up from the engine in batches.
 */
import type { Migration } from '../store/database.js';

/** console/001's cut of indexed values (attr-index.ts keeps the same). */
const INDEXED_VALUE_CHARS = 200;

const SCALAR = "('text', 'integer', 'real')";

/** console/001's attributes (attr-index.ts: DEFAULT_INDEXED_ATTRIBUTES, configurable). */
const INDEXED_ATTRIBUTES = ['accountname', 'username', 'mail', 'displayname', 'externalid', 'userprincipalname', 'samaccountname', 'uid', 'cn', 'employeeid', 'proxyaddresses', 'emails'] as const;
const ATTRS = `(${INDEXED_ATTRIBUTES.map((a) => `'${a}'`).join(', ')})`;
const cut = (v: string) => `substr(lower(${v}), 1, ${INDEXED_VALUE_CHARS})`;

/** (attr, value) of an object's attributes: scalars at the top level, and the elements of arrays (multi-valued). */
const pairsOf = (obj: 'NEW' | 'OLD') => `
  SELECT lower(a.key) AS k, ${cut('a.value')} AS v FROM json_each(${obj}.attrs) AS a WHERE a.type IN ${SCALAR} AND lower(a.key) IN ${ATTRS}
  UNION ALL
  SELECT lower(a.key), ${cut('e.value')} FROM json_each(${obj}.attrs) AS a, json_each(a.value) AS e WHERE a.type = 'array' AND lower(a.key) IN ${ATTRS} AND e.type IN ${SCALAR}`;

const index = `INSERT OR IGNORE INTO mv_attr_index (attr, value, mv_id) SELECT k, v, NEW.id FROM (${pairsOf('NEW')});`;
const unindex = `DELETE FROM mv_attr_index WHERE mv_id = OLD.id AND (attr, value) IN (SELECT k, v FROM (${pairsOf('OLD')}));`;

export const consoleMigrations: Migration[] = [
  {
    id: 'console/001-mv-attr-index',
    sql: `
CREATE TABLE mv_attr_index (
  attr  TEXT NOT NULL,
  value TEXT NOT NULL,
  mv_id INTEGER NOT NULL,
  PRIMARY KEY (attr, value, mv_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO mv_attr_index (attr, value, mv_id)
  SELECT lower(a.key), ${cut('a.value')}, m.id FROM mv_objects AS m, json_each(m.attrs) AS a WHERE a.type IN ${SCALAR} AND lower(a.key) IN ${ATTRS}
  UNION ALL
  SELECT lower(a.key), ${cut('e.value')}, m.id FROM mv_objects AS m, json_each(m.attrs) AS a, json_each(a.value) AS e WHERE a.type = 'array' AND lower(a.key) IN ${ATTRS} AND e.type IN ${SCALAR};
CREATE TRIGGER mv_attr_index_insert AFTER INSERT ON mv_objects BEGIN
  ${index}
END;
CREATE TRIGGER mv_attr_index_update AFTER UPDATE OF attrs ON mv_objects WHEN OLD.attrs IS NOT NEW.attrs BEGIN
  ${unindex}
  ${index}
END;
CREATE TRIGGER mv_attr_index_delete AFTER DELETE ON mv_objects BEGIN
  ${unindex}
END;
`,
    // PostgreSQL: the same index kept by one PL/pgSQL trigger function (JSON numbers are SQLite's
    // 'integer' and 'real'; COLLATE "C": lower() folds ASCII only, as SQLite's). The triggers keep SQLite's names, so a later migration can drop them.
    postgres: `
CREATE TABLE mv_attr_index (
  attr  TEXT COLLATE "C" NOT NULL,
  value TEXT COLLATE "C" NOT NULL,
  mv_id BIGINT NOT NULL,
  PRIMARY KEY (attr, value, mv_id)
);
CREATE FUNCTION mv_attr_pairs(doc text) RETURNS TABLE (k text, v text) LANGUAGE sql IMMUTABLE AS $f$
  SELECT lower(a.key COLLATE "C"), substr(lower((a.value #>> '{}') COLLATE "C"), 1, ${INDEXED_VALUE_CHARS}) FROM jsonb_each(doc::jsonb) AS a
    WHERE jsonb_typeof(a.value) IN ('string', 'number') AND lower(a.key) IN ${ATTRS}
  UNION ALL
  SELECT lower(a.key COLLATE "C"), substr(lower((e #>> '{}') COLLATE "C"), 1, ${INDEXED_VALUE_CHARS}) FROM jsonb_each(doc::jsonb) AS a, jsonb_array_elements(a.value) AS e
    WHERE jsonb_typeof(a.value) = 'array' AND lower(a.key) IN ${ATTRS} AND jsonb_typeof(e) IN ('string', 'number')
$f$;
INSERT INTO mv_attr_index (attr, value, mv_id) SELECT p.k, p.v, m.id FROM mv_objects AS m, mv_attr_pairs(m.attrs) AS p ON CONFLICT DO NOTHING;
CREATE FUNCTION mv_attr_index_sync() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP <> 'INSERT' THEN DELETE FROM mv_attr_index WHERE mv_id = OLD.id; END IF;
  IF TG_OP <> 'DELETE' THEN INSERT INTO mv_attr_index (attr, value, mv_id) SELECT k, v, NEW.id FROM mv_attr_pairs(NEW.attrs) ON CONFLICT DO NOTHING; END IF;
  RETURN NULL;
END
$f$;
CREATE TRIGGER mv_attr_index_insert AFTER INSERT ON mv_objects FOR EACH ROW EXECUTE FUNCTION mv_attr_index_sync();
CREATE TRIGGER mv_attr_index_update AFTER UPDATE OF attrs ON mv_objects FOR EACH ROW WHEN (OLD.attrs IS DISTINCT FROM NEW.attrs) EXECUTE FUNCTION mv_attr_index_sync();
CREATE TRIGGER mv_attr_index_delete AFTER DELETE ON mv_objects FOR EACH ROW EXECUTE FUNCTION mv_attr_index_sync();
`,
  },
  {
    id: 'console/002-attr-index-projection',
    sql: `
DROP TRIGGER IF EXISTS mv_attr_index_insert;
DROP TRIGGER IF EXISTS mv_attr_index_update;
DROP TRIGGER IF EXISTS mv_attr_index_delete;
DROP TABLE IF EXISTS mv_attr_index;
CREATE TABLE console_attr_index (
  attr  TEXT NOT NULL,
  value TEXT NOT NULL,
  mv_id INTEGER NOT NULL,
  PRIMARY KEY (attr, value, mv_id)
) WITHOUT ROWID;
CREATE INDEX console_attr_index_mv ON console_attr_index (mv_id);
-- One row: the attributes indexed, the last change projected (updated_at, id), the watermark
-- (objects updated before it are indexed as they are), the sweep's place.
CREATE TABLE console_attr_index_state (
  id        INTEGER PRIMARY KEY CHECK (id = 1),
  attrs     TEXT NOT NULL,
  pos_at    TEXT NOT NULL,
  pos_id    INTEGER NOT NULL,
  watermark TEXT NOT NULL,
  sweep_id  INTEGER NOT NULL
);
`,
    // PostgreSQL: console/001's triggers there run one function; the tables as translateDdl makes them.
    postgres: `
DROP TRIGGER IF EXISTS mv_attr_index_insert ON mv_objects;
DROP TRIGGER IF EXISTS mv_attr_index_update ON mv_objects;
DROP TRIGGER IF EXISTS mv_attr_index_delete ON mv_objects;
DROP FUNCTION IF EXISTS mv_attr_index_sync();
DROP FUNCTION IF EXISTS mv_attr_pairs(text);
DROP TABLE IF EXISTS mv_attr_index;
CREATE TABLE console_attr_index (
  attr  TEXT COLLATE "C" NOT NULL,
  value TEXT COLLATE "C" NOT NULL,
  mv_id BIGINT NOT NULL,
  PRIMARY KEY (attr, value, mv_id)
);
CREATE INDEX console_attr_index_mv ON console_attr_index (mv_id);
CREATE TABLE console_attr_index_state (
  id        BIGINT PRIMARY KEY CHECK (id = 1),
  attrs     TEXT COLLATE "C" NOT NULL,
  pos_at    TEXT COLLATE "C" NOT NULL,
  pos_id    BIGINT NOT NULL,
  watermark TEXT COLLATE "C" NOT NULL,
  sweep_id  BIGINT NOT NULL
);
`,
  },
];
