/**
 * The console's attribute index over the metaverse: one row per (attribute, value) of every object,
 * lower-cased (attribute names too: directories treat them case-insensitively), values cut at 200
 * characters. Kept by triggers on mv_objects, so no writer of the metaverse has to know about it.
 * It makes a search page an index range scan instead of a walk over every object's JSON: equals by
 * (attr, value, mv_id); starts with and present by (attr, value) in value order.
 */
import type { Migration } from '../store/database.js';

/** Longer values are indexed by their first 200 characters; the search checks the full value. */
export const INDEXED_VALUE_CHARS = 200;

const SCALAR = "('text', 'integer', 'real')";

/**
 * The attributes an administrator looks people and groups up by. Only these are indexed: each
 * indexed value costs the sync a B-tree row per object (about 4 µs of CPU here), and a search by any
 * other attribute still works, by a walk over the metaverse (bench/console.ts measures both).
 */
export const INDEXED_ATTRIBUTES = ['accountname', 'username', 'mail', 'displayname', 'externalid', 'userprincipalname', 'samaccountname', 'uid', 'cn', 'employeeid', 'proxyaddresses', 'emails'] as const;
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
];
