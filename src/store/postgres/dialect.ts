/**
 * The SQLite-to-PostgreSQL dialect layer. The sync service's modules write SQLite SQL (better-sqlite3
 * style: `?` and `@name` parameters, `INSERT OR IGNORE`, `json_each(?)` lists, `temp.` tables); on
 * PostgreSQL the driver hands every statement through `translateStatement` once (cached), so the
 * modules keep one text for both stores. DDL goes through `translateDdl`: integers are 64-bit as in
 * SQLite, text compares byte by byte (COLLATE "C", SQLite's BINARY), BLOB is bytea.
 *
 * What no rewrite can do is done by functions of the compatibility schema (COMPAT_SQL: json_extract,
 * julianday), created once per database by the driver. A module edits its SQL only where neither
 * helps, and then writes the common subset of both dialects.
 */

/** How one parameter of a translated statement is bound. */
export type ParamSource =
  | { kind: 'position'; index: number; jsonArray: boolean }
  | { kind: 'name'; name: string; jsonArray: boolean };

export interface TranslatedStatement {
  text: string;
  params: ParamSource[];
  /** `UPDATE OR IGNORE`: a unique violation skips the statement (SQLite skips the row). */
  ignoreConflicts: boolean;
  /** Whether the statement returns rows (SELECT, VALUES, WITH … SELECT, … RETURNING). */
  reader: boolean;
}

/** Splits SQL into code and quoted/comment parts, so rewrites touch code only. */
interface Piece {
  code: boolean;
  text: string;
}

function pieces(sql: string): Piece[] {
  const out: Piece[] = [];
  let i = 0;
  let start = 0;
  const flush = (end: number, code: boolean): void => {
    if (end > start) out.push({ code, text: sql.slice(start, end) });
    start = end;
  };
  while (i < sql.length) {
    const ch = sql[i]!;
    if (ch === "'" || ch === '"' || ch === '`') {
      flush(i, true);
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) break;
        if (sql[j] === ch) {
          if (sql[j + 1] === ch) j += 2;
          else break;
        } else j++;
      }
      i = Math.min(j + 1, sql.length);
      flush(i, false);
    } else if (ch === '-' && sql[i + 1] === '-') {
      flush(i, true);
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl;
      flush(i, false);
    } else if (ch === '/' && sql[i + 1] === '*') {
      flush(i, true);
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
      flush(i, false);
    } else i++;
  }
  flush(sql.length, true);
  return out;
}

/** Marks a `json_each(?)` list: bound as an array (`= ANY($n)`), from the JSON text the module passes. */
const JSON_LIST = /\bIN\s*\(\s*SELECT\s+value\s+FROM\s+json_each\s*\(\s*\?\s*\)\s*\)/gi;
const JSON_MARK = '\uE000'; // a private-use character: never in SQL text

function rewriteCode(code: string): string {
  return code
    .replace(JSON_LIST, `= ANY(${JSON_MARK})`)
    // A parameter tested only for NULL has no type PostgreSQL can infer: any type answers the same.
    .replace(/\?(\s+IS\s+(NOT\s+)?NULL\b)/gi, '?::text$1')
    .replace(/\bINDEXED\s+BY\s+\w+/gi, '')
    // SQLite's CROSS JOIN … ON is an inner join in a fixed order; PostgreSQL's CROSS JOIN takes no ON.
    .replace(/\bCROSS\s+JOIN(\s+[\w.]+(?:\s+(?:AS\s+)?(?!ON\b)\w+)?\s+(?:INDEXED\s+BY\s+\w+\s+)?ON\b)/gi, 'JOIN$1')
    .replace(/\bNOT\s+INDEXED\b/gi, '')
    .replace(/\btemp\./gi, 'pg_temp.')
    .replace(/\bWITHOUT\s+ROWID\b/gi, '')
    .replace(/\bUPDATE\s+OR\s+IGNORE\b/gi, 'UPDATE')
    .replace(/\bINSERT\s+OR\s+IGNORE\s+INTO\b/gi, 'INSERT INTO');
}

const cache = new Map<string, TranslatedStatement>();
const MAX_CACHED = 4096;

/** One statement (parameters allowed) from SQLite's dialect into PostgreSQL's. */
export function translateStatement(sql: string): TranslatedStatement {
  const hit = cache.get(sql);
  if (hit) return hit;
  const head = headOf(sql);
  const orIgnoreInsert = /^INSERT\s+OR\s+IGNORE\b/i.test(head);
  const orReplace = /^(INSERT\s+OR\s+REPLACE|REPLACE)\b/i.test(head);
  if (orReplace) throw new Error('INSERT OR REPLACE has no PostgreSQL translation here: write INSERT … ON CONFLICT (key) DO UPDATE');
  const ignoreConflicts = /^UPDATE\s+OR\s+IGNORE\b/i.test(head);
  const params: ParamSource[] = [];
  const names = new Map<string, number>();
  let positional = 0;
  let text = '';
  for (const p of pieces(sql)) {
    if (!p.code) {
      text += p.text;
      continue;
    }
    const code = rewriteCode(p.text);
    // Parameters: `?` (and the json list mark) by position, `@name`/`:name`/`$name` by name.
    text += code.replace(/\uE000|\?(\d*)|[@:$]([A-Za-z_][A-Za-z0-9_]*)|::/g, (whole, _num: string | undefined, name: string | undefined) => {
      if (whole === '::') return whole;
      if (name !== undefined) {
        let n = names.get(name);
        if (n === undefined) {
          params.push({ kind: 'name', name, jsonArray: false });
          n = params.length;
          names.set(name, n);
        }
        return `$${n}`;
      }
      params.push({ kind: 'position', index: positional++, jsonArray: whole === JSON_MARK });
      return `$${params.length}`;
    });
  }
  if (orIgnoreInsert) text = appendBeforeReturning(text, ' ON CONFLICT DO NOTHING');
  const reader = /^(SELECT|VALUES|WITH|PRAGMA|EXPLAIN)\b/i.test(head) || /\bRETURNING\b/i.test(text);
  const out: TranslatedStatement = { text, params, ignoreConflicts, reader };
  if (cache.size >= MAX_CACHED) cache.clear();
  cache.set(sql, out);
  return out;
}

/** The statement without leading blanks and comments. */
function headOf(sql: string): string {
  return sql.replace(/^(\s|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)*/, '');
}

function appendBeforeReturning(text: string, clause: string): string {
  const trimmed = text.replace(/[\s;]+$/, '');
  const m = /\sRETURNING\s/i.exec(trimmed);
  if (!m) return trimmed + clause;
  return trimmed.slice(0, m.index) + clause + trimmed.slice(m.index);
}

/** Binds a statement's parameters as node-postgres wants them (better-sqlite3's calling convention in). */
export function bindParams(t: TranslatedStatement, args: readonly unknown[]): unknown[] {
  if (t.params.length === 0) return [];
  const named = args.length > 0 && isPlainObject(args[0]) ? (args[0] as Record<string, unknown>) : undefined;
  const flat = named ? args.slice(1) : args.flatMap((a) => (Array.isArray(a) ? a : [a]));
  return t.params.map((p) => {
    let v: unknown;
    if (p.kind === 'name') {
      if (!named || !(p.name in named)) throw new RangeError(`missing named parameter "${p.name}"`);
      v = named[p.name];
    } else {
      if (p.index >= flat.length) throw new RangeError('too few parameter values were provided');
      v = flat[p.index];
    }
    if (p.jsonArray) return typeof v === 'string' ? (JSON.parse(v) as unknown[]) : v;
    return v === undefined ? null : v;
  });
}

function isPlainObject(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Splits a script at `;` outside quotes and comments. */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const p of pieces(sql)) {
    if (!p.code) {
      cur += p.text;
      continue;
    }
    const parts = p.text.split(';');
    for (let i = 0; i < parts.length; i++) {
      cur += parts[i];
      if (i < parts.length - 1) {
        if (cur.trim()) out.push(cur.trim());
        cur = '';
      }
    }
  }
  if (cur.trim()) out.push(cur.trim());
  return out.filter((s) => pieces(s).some((p) => p.code && p.text.trim() !== ''));
}

/**
 * A migration script from SQLite's DDL into PostgreSQL's: column types (64-bit integers, identity
 * for AUTOINCREMENT, bytea, byte-order text), and the statement rewrites above. Triggers cannot be
 * translated: a migration with one needs its own `postgres` text.
 */
export function translateDdl(sql: string): string {
  return splitStatements(sql)
    .map((stmt) => {
      const head = headOf(stmt);
      if (/^CREATE\s+TRIGGER\b/i.test(head)) throw new Error('a trigger cannot be translated to PostgreSQL: give the migration a `postgres` variant');
      const ddl = /^(CREATE\s+(TEMP\s+|TEMPORARY\s+)?TABLE|ALTER\s+TABLE)\b/i.test(head);
      let out = '';
      for (const p of pieces(stmt)) {
        if (!p.code) {
          out += p.text;
          continue;
        }
        let code = p.text;
        if (ddl) {
          code = code
            .replace(/\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b/gi, 'BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY')
            .replace(/\bINTEGER\b/gi, 'BIGINT')
            .replace(/\bBLOB\b/gi, 'BYTEA')
            .replace(/\bREAL\b/gi, 'DOUBLE PRECISION')
            .replace(/\bTEXT\b/gi, 'TEXT COLLATE "C"');
        }
        out += code;
      }
      const t = translateStatement(out);
      if (t.params.length > 0) throw new Error('a migration cannot have parameters');
      return t.text;
    })
    .join(';\n');
}

/**
 * The compatibility schema: SQLite's functions the modules use, with SQLite's results. IMMUTABLE,
 * so the expression indexes of passwords/001 (lower(json_extract(attrs, '$.samaccountname[0]')))
 * are built and used as on SQLite. json_extract answers text in the "C" collation (so lower() folds
ASCII only, as SQLite's does, whatever the database's locale), and JSON true/false as '1'/'0' (SQLite
 * answers 1/0): a module that compares a flag casts it (CAST(… AS INTEGER)), which both dialects read.
 */
export const COMPAT_SQL = `
CREATE OR REPLACE FUNCTION sqlite_json_path(path text) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$
  SELECT CASE WHEN path = '$' THEN ARRAY[]::text[]
    ELSE string_to_array(regexp_replace(regexp_replace(path, '^\\$\\.?', ''), '\\[(\\d+)\\]', '.\\1', 'g'), '.') END
$f$;
CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$
  SELECT CASE jsonb_typeof(v) WHEN 'null' THEN NULL WHEN 'boolean' THEN (CASE WHEN v = 'true'::jsonb THEN '1' ELSE '0' END) ELSE (v #>> '{}') COLLATE "C" END
    FROM (SELECT doc::jsonb #> sqlite_json_path(path) AS v) AS x
$f$;
CREATE OR REPLACE FUNCTION julianday(t text) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$
  SELECT extract(epoch FROM t::timestamptz)::double precision / 86400.0 + 2440587.5
$f$;
`;
