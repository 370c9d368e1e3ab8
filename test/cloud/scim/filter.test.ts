/**
 * Filters: parse + normalise + SQL translation. Each case runs through SQL (ScimService.list over a
 * real SQLite file) and through the JS evaluator, and both must give the expected users.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase, type Database } from '../../../src/store/database.js';
import { scimMigrations } from '../../../src/cloud/scim/index.js';
import { ScimError } from '../../../src/cloud/scim/errors.js';
import { compileFilter, evalFilter, filterToSql, MAX_FILTER_LENGTH } from '../../../src/cloud/scim/filter.js';
import { ScimService } from '../../../src/cloud/scim/service.js';
import { USERS } from '../../../src/cloud/scim/resources/users.js';
import { GROUPS } from '../../../src/cloud/scim/resources/groups.js';
import { USER_TYPE } from '../../../src/cloud/scim/schema.js';
import { SqliteStore } from '../../../src/cloud/store/sqlite.js';
import type { CloudStore } from '../../../src/cloud/store/sql.js';
import { ENTERPRISE, ONPREM_USER, openTestScimStore, testStoreKind } from './helpers.js';

let dir: string;
let db: Database | undefined;
let store: CloudStore;
let svc: ScimService;
let rendered: Record<string, unknown>[];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-scim-filter-'));
  ({ store, db } = await openTestScimStore(dir));
  const times = ['2024-01-01T00:00:00.000Z', '2024-02-01T00:00:00.000Z', '2024-03-01T00:00:00.000Z', '2024-04-01T00:00:00.000Z', '2024-05-01T00:00:00.000Z'];
  let t = 0;
  svc = new ScimService(store, undefined, () => times[Math.min(t++, times.length - 1)]!);
  const alice = await svc.create(USERS, {
    userName: 'Alice@Example.com',
    displayName: 'Alice',
    active: true,
    externalId: 'ext-A',
    title: 'Engineer',
    name: { givenName: 'Alice', familyName: 'Smith' },
    emails: [
      { value: 'alice@example.com', type: 'work', primary: true },
      { value: 'alice@home.org', type: 'home' },
    ],
    [ENTERPRISE]: { employeeNumber: '100', department: 'R&D' },
  });
  await svc.create(USERS, {
    userName: 'bob@example.com',
    active: false,
    externalId: 'ext-b',
    name: { familyName: 'Jones' },
    emails: [{ value: 'bob@corp.net', type: 'work' }],
    [ENTERPRISE]: { employeeNumber: '200' },
    [ONPREM_USER]: { onPremisesSamAccountName: 'bob' },
  });
  await svc.create(USERS, { userName: 'carol', displayName: 'ÉCOLE', title: 'Manager' });
  await svc.create(USERS, { userName: 'dave%_', externalId: 'EXT-A' });
  await svc.create(GROUPS, { displayName: 'Admins', members: [{ value: alice.id }] });
  const all = await svc.list(USERS, {});
  rendered = await svc.renderAll(USERS, all.items, 'http://x/scim/v2');
});

after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const names = (items: { doc: Record<string, unknown> }[]) => items.map((i) => i.doc.userName as string).sort();

const cases: [string, string[]][] = [
  ['userName eq "alice@example.com"', ['Alice@Example.com']],
  ['USERNAME Eq "ALICE@EXAMPLE.COM"', ['Alice@Example.com']],
  ['externalId eq "ext-a"', []],
  ['externalId eq "EXT-A"', ['dave%_']],
  ['userName ne "CAROL"', ['Alice@Example.com', 'bob@example.com', 'dave%_']],
  ['userName co "EXAMPLE"', ['Alice@Example.com', 'bob@example.com']],
  ['userName sw "dave%"', ['dave%_']],
  ['userName co "_"', ['dave%_']],
  ['userName co "%"', ['dave%_']],
  ['userName ew ".COM"', ['Alice@Example.com', 'bob@example.com']],
  ['userName gt "c"', ['carol', 'dave%_']],
  ['userName lt "b"', ['Alice@Example.com']],
  ['displayName eq "école"', ['carol']],
  ['title pr', ['Alice@Example.com', 'carol']],
  ['not (title pr)', ['bob@example.com', 'dave%_']],
  ['active eq true', ['Alice@Example.com']],
  ['active eq false', ['bob@example.com']],
  ['not (active eq false)', ['Alice@Example.com', 'carol', 'dave%_']],
  ['emails[type eq "work" and value co "@example"]', ['Alice@Example.com']],
  ['emails[type eq "work"]', ['Alice@Example.com', 'bob@example.com']],
  ['emails[not (type eq "work")]', ['Alice@Example.com']],
  ['emails.value ew ".ORG"', ['Alice@Example.com']],
  ['emails co "corp"', ['bob@example.com']],
  ['emails pr', ['Alice@Example.com', 'bob@example.com']],
  ['name.familyName eq "smith"', ['Alice@Example.com']],
  ['urn:ietf:params:scim:schemas:core:2.0:User:name.givenName sw "al"', ['Alice@Example.com']],
  [`${ENTERPRISE}:employeeNumber gt "150"`, ['bob@example.com']],
  [`${ENTERPRISE.toUpperCase()}:EMPLOYEENUMBER le "100"`, ['Alice@Example.com']],
  [`${ONPREM_USER}:onPremisesSamAccountName eq "BOB"`, ['bob@example.com']],
  // Alice's lastModified is the group's (2024-05-01): joining Admins changed her groups[].
  ['meta.lastModified gt "2024-02-15T00:00:00Z"', ['Alice@Example.com', 'carol', 'dave%_']],
  ['meta.created le "2024-02-01T00:00:00Z"', ['Alice@Example.com', 'bob@example.com']],
  ['meta.lastModified ge "2024-02-01T01:00:00+01:00"', ['Alice@Example.com', 'bob@example.com', 'carol', 'dave%_']],
  ['meta.lastModified lt "2024-03-01T00:00:00Z"', ['bob@example.com']],
  ['meta.resourceType eq "User"', ['Alice@Example.com', 'bob@example.com', 'carol', 'dave%_']],
  ['(userName sw "a" or userName sw "b") and active eq true', ['Alice@Example.com']],
  ['userName sw "c" or userName sw "b" and active eq true', ['carol']],
  ['groups.display eq "ADMINS"', ['Alice@Example.com']],
  ['groups pr', ['Alice@Example.com']],
  ['not (groups pr)', ['bob@example.com', 'carol', 'dave%_']],
  ['title eq null', ['bob@example.com', 'dave%_']],
];

describe('filter → SQL and JS evaluation give the same, expected users', () => {
  for (const [filter, expected] of cases) {
    test(filter, async () => {
      const viaSql = names((await svc.list(USERS, { filter })).items);
      assert.deepEqual(viaSql, expected, 'SQL');
      const f = compileFilter(filter, { rt: USER_TYPE });
      const viaJs = rendered.filter((r) => evalFilter(f, r)).map((r) => r.userName as string).sort();
      assert.deepEqual(viaJs, expected, 'JS evaluator');
    });
  }
});

describe('invalid filters are 400 invalidFilter', () => {
  const bad: [string, RegExp][] = [
    ['foo eq "x"', /unknown attribute "foo"/],
    ['emails[bogus eq 1]', /unknown attribute "bogus"/],
    ['urn:example:unknown:2.0:User:x eq 1', /unknown schema/],
    ['userName eq', /invalid filter/],
    ['userName eq "x" and', /invalid filter/],
    ['active eq "yes"', /boolean/],
    ['active gt true', /only eq and ne/],
    ['meta.lastModified gt "not a date"', /dateTime/],
    ['userName gt 5', /string/],
    ['name eq "x"', /complex/],
    ['(' .repeat(100) + 'userName pr' + ')'.repeat(100), /nests deeper/],
    ['not '.repeat(1000) + '(userName pr)', /too many "not"/],
    ['userName eq "' + 'x'.repeat(MAX_FILTER_LENGTH) + '"', /longer than/],
  ];
  for (const [filter, detail] of bad) {
    test(filter.length > 60 ? filter.slice(0, 60) + '…' : filter || '(empty)', async () => {
      await assert.rejects(
        () => svc.list(USERS, { filter }),
        (e: unknown) => e instanceof ScimError && e.status === 400 && e.scimType === 'invalidFilter' && detail.test(e.detail),
      );
    });
  }

  test('an empty filter is rejected by the parser wrapper', () => {
    assert.throws(() => compileFilter('  ', { rt: USER_TYPE }), (e: unknown) => e instanceof ScimError && e.scimType === 'invalidFilter' && /empty/.test(e.detail));
  });

  test('the nesting cap keeps the parser from overflowing its stack (5000 levels)', () => {
    const deep = '('.repeat(5000) + 'userName pr' + ')'.repeat(5000);
    assert.throws(() => compileFilter(deep, { rt: USER_TYPE }), (e: unknown) => e instanceof ScimError && e.scimType === 'invalidFilter');
  });
});

describe('SQL translation', () => {
  const sql = (f: string) => filterToSql(compileFilter(f, { rt: USER_TYPE }), USERS.sql);

  test('userName eq uses the lower-cased unique column with a lower-cased parameter', () => {
    assert.deepEqual(sql('userName eq "Bob@X.com"'), { sql: 'r.user_name_lc = ?', params: ['bob@x.com'] });
  });

  test('userName eq is answered from the unique index, not a table scan', { skip: testStoreKind() === 'postgres' && 'EXPLAIN QUERY PLAN is SQLite' }, () => {
    const q = sql('userName eq "bob@example.com"');
    const plan = db!.prepare(`EXPLAIN QUERY PLAN SELECT id FROM scim_users AS r WHERE ${q.sql}`).all(...q.params) as { detail: string }[];
    assert.match(plan.map((p) => p.detail).join('\n'), /USING INDEX/);
  });

  test('externalId (caseExact) compares without case folding', () => {
    assert.deepEqual(sql('externalId eq "AbC"'), { sql: 'r.external_id = ?', params: ['AbC'] });
  });

  test('co on a JSON attribute folds case with scim_lower and uses instr (no LIKE wildcards)', () => {
    const q = sql('title co "Eng"');
    assert.equal(q.sql, `instr(scim_lower(json_extract(r.doc, '$."title"')), ?) > 0`);
    assert.deepEqual(q.params, ['eng']);
  });

  test('value paths become EXISTS over json_each', () => {
    const q = sql('emails[type eq "work"]');
    assert.match(q.sql, /^EXISTS \(SELECT 1 FROM json_each\(r\.doc, '\$\."emails"'\) AS je WHERE /);
  });

  test('dateTime values are normalised to UTC ISO strings', () => {
    assert.deepEqual(sql('meta.lastModified gt "2024-01-01T02:00:00+02:00"').params, ['2024-01-01T00:00:00.000Z']);
  });

  test('the filter value is always a bound parameter, never SQL text', async () => {
    const q = sql(`userName eq "x' OR 1=1 --"`);
    assert.equal(q.sql, 'r.user_name_lc = ?');
    assert.equal((await svc.list(USERS, { filter: `userName eq "x' OR 1=1 --"` })).total, 0);
  });
});

describe('scale', () => {
  test('a filtered, paged list over 100k users reads only the page into memory', async () => {
    const sdb = openDatabase(path.join(dir, 'big.db'), scimMigrations);
    const big = new ScimService(new SqliteStore(sdb));
    await big.transaction(async (_repo, tx) => {
      for (let i = 0; i < 100_000; i++) await big.create(USERS, { userName: `user${i}@corp.example`, active: i % 2 === 0 }, tx);
    });
    let parsed = 0;
    const origParse = JSON.parse;
    // Every stored document is parsed with JSON.parse when loaded: count them.
    JSON.parse = ((text: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
      if (typeof text === 'string' && text.startsWith('{')) parsed++; // documents, not filter literals
      return origParse(text, reviver);
    }) as typeof JSON.parse;
    let res;
    try {
      res = await big.list(USERS, { filter: 'userName sw "user9" and active eq true', count: 10, startIndex: 21 });
    } finally {
      JSON.parse = origParse;
    }
    sdb.close();
    // user9, user90-99, user900-999, ... with an even number: 0 + 5 + 50 + 500 + 5000
    assert.equal(res.total, 5555);
    assert.equal(res.items.length, 10);
    assert.ok(parsed <= 10, `parsed ${parsed} documents`);
  });
});

describe('string values are JSON strings (RFC 7644 §3.4.2.2): their escapes are decoded', () => {
  // Values with a backslash (a down-level logon name) or a quote. scim2-parse-filter alone doubled
  // every backslash not before a quote: `"DOM\\jdoe"` looked for DOM\\jdoe, and `"tail\\"` was refused.
  let own: ScimService;
  let ownDir: string;
  let ownStore: CloudStore;
  before(async () => {
    ownDir = mkdtempSync(path.join(tmpdir(), 'idsync-scim-filter-escapes-'));
    ({ store: ownStore } = await openTestScimStore(ownDir));
    own = new ScimService(ownStore);
    for (const userName of ['DOM\\jdoe', 'tail\\', 'say "hi"', 'DOM\\\\double', 'plain']) await own.create(USERS, { userName, emails: [{ value: `${userName.length}@x.test`, type: userName }] });
  });
  after(async () => {
    await ownStore.close();
    rmSync(ownDir, { recursive: true, force: true });
  });
  const escapes: [string, string[]][] = [
    ['userName eq "DOM\\\\jdoe"', ['DOM\\jdoe']],
    ['userName eq "DOM\\u005cjdoe"', ['DOM\\jdoe']],
    ['userName eq "tail\\\\"', ['tail\\']],
    ['userName eq "say \\"hi\\""', ['say "hi"']],
    ['userName eq "DOM\\\\\\\\double"', ['DOM\\\\double']],
    ['userName sw "DOM\\\\"', ['DOM\\\\double', 'DOM\\jdoe']],
    ['emails[type eq "DOM\\\\jdoe"]', ['DOM\\jdoe']],
    // A backslash that starts no JSON escape is kept as one (lenient clients send it unescaped).
    ['userName eq "DOM\\jdoe"', ['DOM\\jdoe']],
    ['userName eq "plain" or userName eq "tail\\\\"', ['plain', 'tail\\']],
  ];
  for (const [filter, expected] of escapes) {
    test(filter, async () => {
      assert.deepEqual(names((await own.list(USERS, { filter })).items), [...expected].sort());
      const all = await own.renderAll(USERS, (await own.list(USERS, {})).items, 'http://x/scim/v2');
      const f = compileFilter(filter, { rt: USER_TYPE });
      assert.deepEqual(all.filter((r) => evalFilter(f, r)).map((r) => r.userName as string).sort(), [...expected].sort(), 'JS evaluator');
    });
  }
  test('a string that is not one (a \\u escape without four hex digits) is 400 invalidFilter', async () => {
    await assert.rejects(() => own.list(USERS, { filter: 'userName eq "bad\\u12"' }), (e: unknown) => e instanceof ScimError && e.status === 400 && e.scimType === 'invalidFilter');
  });
});
