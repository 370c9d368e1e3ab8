/**
 * Property tests of the filter parser and translator (fast-check, seeded): random filters over
 * random users must select the same users through SQL (a real SQLite file) as through the JS
 * evaluator; printing a compiled filter and compiling it again is a fixed point; and no input
 * string makes the compiler throw anything but a 400 ScimError.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ScimError } from '../../../src/cloud/scim/errors.js';
import { compileFilter, evalFilter, type NFilter } from '../../../src/cloud/scim/filter.js';
import { USERS } from '../../../src/cloud/scim/resources/users.js';
import { refName } from '../../../src/cloud/scim/schema.js';
import type { CloudStore } from '../../../src/cloud/store/sql.js';
import { openTestScimStore } from './helpers.js';
import { ScimService } from '../../../src/cloud/scim/service.js';
import { USER_TYPE } from '../../../src/cloud/scim/schema.js';
import { ENTERPRISE } from './helpers.js';

const SEED = Number(process.env.IDSYNC_PROPERTY_SEED ?? 20261206);
const RUNS = Number(process.env.IDSYNC_PROPERTY_RUNS ?? 300);

// Small alphabets, so that random comparisons actually match something (and case folding matters).
const ALPHABET = ['a', 'b', 'A', 'B', 'é', 'É', 'ß', '%', '_', ' ', '.'];
const str = (max: number) => fc.array(fc.constantFrom(...ALPHABET), { maxLength: max }).map((a) => a.join(''));

const STRING_ATTRS = ['userName', 'displayName', 'title', 'externalId', 'name.givenName', `${ENTERPRISE}:department`];
const EMAIL_SUBS = ['value', 'type', 'display'];
const STRING_OPS = ['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le'] as const;

/** A filter as text, built from a random tree. */
const leaf: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom(...STRING_ATTRS), fc.constantFrom(...STRING_OPS), str(3)).map(([a, op, v]) => `${a} ${op} ${JSON.stringify(v)}`),
  fc.constantFrom(...STRING_ATTRS, 'active', 'emails').map((a) => `${a} pr`),
  fc.tuple(fc.constantFrom('eq', 'ne'), fc.boolean()).map(([op, b]) => `active ${op} ${b}`),
  fc.tuple(fc.constantFrom(...STRING_ATTRS), fc.constantFrom('eq', 'ne')).map(([a, op]) => `${a} ${op} null`),
  fc.tuple(fc.constantFrom(...EMAIL_SUBS), fc.constantFrom(...STRING_OPS), str(2)).map(([s, op, v]) => `emails.${s} ${op} ${JSON.stringify(v)}`),
);
const elementLeaf = fc.tuple(fc.constantFrom(...EMAIL_SUBS), fc.constantFrom(...STRING_OPS), str(2)).map(([s, op, v]) => `${s} ${op} ${JSON.stringify(v)}`);
const elementFilter = fc.oneof(
  elementLeaf,
  fc.tuple(elementLeaf, fc.constantFrom('and', 'or'), elementLeaf).map(([l, c, r]) => `${l} ${c} ${r}`),
  elementLeaf.map((l) => `not (${l})`),
);
const { filter: filterText } = fc.letrec<{ filter: string }>((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    elementFilter.map((f) => `emails[${f}]`),
    fc.tuple(tie('filter'), fc.constantFrom('and', 'or'), tie('filter')).map(([l, c, r]) => `(${l}) ${c} (${r})`),
    tie('filter').map((f) => `not (${f})`),
  ),
}));

const userDoc = (i: number) =>
  fc
    .record(
      {
        userName: str(3),
        displayName: str(3),
        title: str(2),
        externalId: str(2),
        givenName: str(2),
        department: str(2),
        active: fc.boolean(),
        emails: fc.array(fc.record({ local: str(2), type: fc.constantFrom('work', 'home', 'Work'), display: str(2) }, { requiredKeys: ['local', 'type'] }), { maxLength: 3 }),
      },
      { requiredKeys: ['userName'] },
    )
    .map((u) => {
      const doc: Record<string, unknown> = { userName: `${u.userName}#${i}` };
      if (u.displayName !== undefined) doc.displayName = u.displayName;
      if (u.title !== undefined) doc.title = u.title;
      if (u.externalId !== undefined) doc.externalId = `${u.externalId}#${i}`;
      if (u.givenName !== undefined) doc.name = { givenName: u.givenName };
      if (u.department !== undefined) doc[ENTERPRISE] = { department: u.department };
      if (u.active !== undefined) doc.active = u.active;
      if (u.emails?.length) {
        doc.emails = u.emails.map((e) => ({ value: `${e.local.replace(/[\s@]/g, '') || 'x'}@d.example`, type: e.type, ...(e.display !== undefined ? { display: e.display } : {}) }));
      }
      return doc;
    });

/** Prints a compiled filter back to SCIM filter text (canonical names, explicit parentheses). */
function print(f: NFilter): string {
  switch (f.op) {
    case 'and':
    case 'or':
      return f.filters.map((x) => `(${print(x)})`).join(` ${f.op} `);
    case 'not':
      return `not (${print(f.filter)})`;
    case 'valuePath':
      return `${refName(f.ref)}[${print(f.filter)}]`;
    case 'pr':
      return `${refName(f.ref)} pr`;
    default:
      return `${refName(f.ref)} ${f.op} ${JSON.stringify(f.value)}`;
  }
}

let dir: string;
let store: CloudStore;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-scim-prop-'));
  ({ store } = await openTestScimStore(dir));
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('filter properties', () => {
  test('SQL and the JS evaluator select the same users', async () => {
    let partial = 0; // filters that selected some but not all users: the property is not vacuous
    const population = fc.integer({ min: 0, max: 12 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => userDoc(i))));
    await fc.assert(
      fc.asyncProperty(population, fc.array(filterText, { minLength: 1, maxLength: 5 }), async (docs, filters) => {
        for (const t of ['scim_group_members', 'scim_groups', 'scim_users']) await store.run(`DELETE FROM ${t}`);
        const svc = new ScimService(store);
        for (const d of docs) await svc.create(USERS, d);
        const rendered = await svc.renderAll(USERS, (await svc.list(USERS, { count: 1000 })).items, 'http://x/scim/v2');
        for (const text of filters) {
          const viaSql = (await svc.list(USERS, { filter: text, count: 1000 })).items
            .map((i) => i.doc.userName as string)
            .sort();
          const f = compileFilter(text, { rt: USER_TYPE });
          const viaJs = rendered
            .filter((r) => evalFilter(f, r))
            .map((r) => r.userName as string)
            .sort();
          assert.deepEqual(viaSql, viaJs, `filter ${text}`);
          if (viaSql.length > 0 && viaSql.length < docs.length) partial++;
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
    assert.ok(partial > RUNS / 4, `only ${partial} filters selected a proper subset`);
  });

  test('print ∘ compile is a fixed point', () => {
    fc.assert(
      fc.property(filterText, (text) => {
        const once = print(compileFilter(text, { rt: USER_TYPE }));
        const twice = print(compileFilter(once, { rt: USER_TYPE }));
        assert.equal(twice, once);
      }),
      { seed: SEED, numRuns: RUNS * 3 },
    );
  });

  test('any string compiles or is a 400 invalidFilter, never another error', () => {
    const tokens = fc.constantFrom('userName', 'emails', '[', ']', '(', ')', ' ', 'eq', 'co', 'pr', 'and', 'or', 'not', '"', '"a"', '\\', '.', ':', 'urn:x', 'true', '1', 'null', 'value');
    const junk = fc.oneof(fc.string({ maxLength: 60 }), fc.array(tokens, { maxLength: 25 }).map((t) => t.join(' ')), fc.array(tokens, { maxLength: 25 }).map((t) => t.join('')));
    fc.assert(
      fc.property(junk, (text) => {
        try {
          compileFilter(text, { rt: USER_TYPE });
        } catch (err) {
          assert.ok(err instanceof ScimError, `non-SCIM error for ${JSON.stringify(text)}: ${String(err)}`);
          assert.equal(err.status, 400);
          assert.equal(err.scimType, 'invalidFilter');
        }
      }),
      { seed: SEED, numRuns: RUNS * 10 },
    );
  });
});
