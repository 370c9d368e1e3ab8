/** docs/errors.md is generated from the error catalogs, lists every code once, and every code raised in src/ is catalogued. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ERRORS_DOC, renderErrorsDoc } from '../../scripts/gen-errors-doc.js';
import { API_ERROR_CATALOG } from '../../src/cloud/auth/errors.js';
import { ERROR_CATALOG, EXIT, exitCodeFor } from '../../src/core/error-catalog.js';

const SRC = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? sourceFiles(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : []));
}

test('docs/errors.md is generated from the current catalogs', () => {
  assert.ok(readFileSync(ERRORS_DOC, 'utf8') === renderErrorsDoc(), 'docs/errors.md is out of date: run `node --import tsx scripts/gen-errors-doc.ts`');
});

test('the page lists every error code once, with its exit code', () => {
  const doc = renderErrorsDoc();
  const [idsyncPart] = doc.split('## Cloud directory API errors');
  for (const [code, info] of Object.entries(ERROR_CATALOG)) {
    const rows = idsyncPart!.split('\n').filter((l) => l.startsWith(`| \`${code}\` |`));
    assert.equal(rows.length, 1, code);
    assert.ok(rows[0]!.startsWith(`| \`${code}\` | ${EXIT[info.exit]} |`), rows[0]);
  }
  for (const code of Object.keys(API_ERROR_CATALOG)) assert.ok(doc.includes(`| \`${code}\` |`), code);
  for (const [name, n] of Object.entries(EXIT)) assert.ok(doc.includes(`| ${n} | \`${name}\` |`), name);
});

test('every error code raised in src/ is in the catalog', () => {
  const raised = new Set<string>();
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/new IdsyncError\(\s*'([A-Z_]+)'/g)) raised.add(m[1]!);
  }
  assert.ok(raised.size > 10);
  for (const code of raised) assert.ok(Object.hasOwn(ERROR_CATALOG, code), `${code} is raised but not catalogued`);
});

test('one exit-code mapping: data errors exit 2, unavailability 3, a lock 4, unknown codes 1', () => {
  assert.equal(exitCodeFor('LDIF_PARSE_ERROR'), 2);
  assert.equal(exitCodeFor('HASH_INPUT_INVALID'), 2);
  assert.equal(exitCodeFor('CONFIG_INVALID'), 2);
  assert.equal(exitCodeFor('CLOUD_AUTH_FAILED'), 3);
  assert.equal(exitCodeFor('RUN_IN_PROGRESS'), 4);
  assert.equal(exitCodeFor('NO_SUCH_CODE'), 1);
});
