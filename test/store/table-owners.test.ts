/**
 * One owner per table: the module (src/<module>/) whose migration creates a table is the only one
 * whose SQL names it; every other module asks the owner (engine/runs.ts answers the last finished
 * run, passwords/outbox.ts the outbox depth, engine/connector-space-users.ts who a user is). Before,
 * status/, doctor/ and the cycle each wrote their own queries against tables of other modules, and
 * the answers drifted apart (issue 11). The SQL is read from the source, so a new table is covered
 * the day its CREATE TABLE lands.
 *
 * The exceptions below are named with their reason; the test also fails when one is no longer
 * needed, so the list only shrinks.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** file -> tables it may name although another module owns them, and why. */
const EXCEPTIONS: Record<string, { tables: string[]; why: string }> = {
  'src/console/migrations.ts': {
    tables: ['mv_objects'],
    why: 'console/001 (shipped, never edited) kept the attribute index by triggers on mv_objects; console/002 drops them',
  },
  'src/passwords/migrations.ts': {
    tables: ['cs_objects'],
    why: 'passwords/001 indexes the login names that engine/connector-space-users.ts looks up; a shipped migration is never edited',
  },
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const rel = (file: string): string => path.relative(root, file).split(path.sep).join('/');
/** src/<module>/: the owning unit. */
const moduleOf = (file: string): string => rel(file).split('/').slice(0, 2).join('/') + '/';

const files = sourceFiles(path.join(root, 'src')).map((f) => ({ file: rel(f), module: moduleOf(f), text: readFileSync(f, 'utf8') }));

/** Table -> the module whose migration creates it. */
function owners(): Map<string, string> {
  const map = new Map<string, string>();
  for (const f of files) {
    for (const m of f.text.matchAll(/\bCREATE TABLE(?: IF NOT EXISTS)? ([a-z_][a-z0-9_]*)/g)) {
      const table = m[1] as string;
      const prev = map.get(table);
      assert.ok(prev === undefined || prev === f.module, `table ${table} is created by two modules: ${prev} and ${f.module}`);
      map.set(table, f.module);
    }
  }
  return map;
}

/** Every table a file's SQL names (upper-case SQL keywords only: prose says "from the"). */
function tablesNamed(text: string, known: ReadonlyMap<string, string>): Set<string> {
  const found = new Set<string>();
  for (const m of text.matchAll(/\b(?:FROM|INTO|UPDATE|JOIN|TABLE(?: IF NOT EXISTS)?|ON)\s+([a-z_][a-z0-9_]*)\b/g)) {
    const t = m[1] as string;
    if (known.has(t)) found.add(t);
  }
  return found;
}

describe('one owner per table', () => {
  const tableOwners = owners();

  test('the source declares the tables this test guards', () => {
    for (const [table, owner] of [['runs', 'src/engine/'], ['phs_users', 'src/passwords/'], ['cs_objects', 'src/engine/'], ['credentials', 'src/credentials/'], ['events', 'src/events/']]) {
      assert.equal(tableOwners.get(table as string), owner, `owner of ${table}`);
    }
  });

  test('no module names a table that another module owns', () => {
    const violations: string[] = [];
    for (const f of files) {
      const allowed = new Set(EXCEPTIONS[f.file]?.tables ?? []);
      for (const t of tablesNamed(f.text, tableOwners)) {
        const owner = tableOwners.get(t) as string;
        if (owner !== f.module && !allowed.has(t)) violations.push(`${f.file} names ${t}, owned by ${owner}: ask a function of ${owner} instead`);
      }
    }
    assert.deepEqual(violations, []);
  });

  test('every exception is still needed', () => {
    for (const [file, { tables }] of Object.entries(EXCEPTIONS)) {
      const f = files.find((x) => x.file === file);
      assert.ok(f, `${file} is gone: remove its exception`);
      const named = tablesNamed(f.text, tableOwners);
      for (const t of tables) assert.ok(named.has(t), `${file} no longer names ${t}: remove it from the exceptions`);
    }
  });
});
