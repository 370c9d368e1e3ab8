/**
 * The hostile corpus for the cloud directory (issue 9): every case in fixtures/*.json is sent to a
 * real `cloud serve` over HTTP and must get a clear 4xx with an error body in the API's format, no
 * 5xx, no stack trace or echo of a huge input, no change of state (counts and versions of every
 * table that a request could write), and an answer in bounded time. Fixtures say what is sent and
 * what is expected; this file only expands and checks them. Add a case by adding a line there.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { fetchToken } from '../../../src/cloud/admin-api-client.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { buildCredentials, type Credential } from './tokens.js';

const here = path.dirname(fileURLToPath(import.meta.url));
// Fixtures are plain JSON on purpose: readable, diffable, and editable without TypeScript.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const fixture = (name: string): any => JSON.parse(readFileSync(path.join(here, 'fixtures', name), 'utf8'));

const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const BULK_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:BulkResponse';
const MACROS: Record<string, string> = {
  U: 'urn:ietf:params:scim:schemas:core:2.0:User',
  P: 'urn:ietf:params:scim:api:messages:2.0:PatchOp',
  B: 'urn:ietf:params:scim:api:messages:2.0:BulkRequest',
  LONGFILTER: encodeURIComponent(`userName eq "${'f'.repeat(5000)}"`),
};
/** Generous: catches a stall (the old PATCH took minutes), not a slow machine. */
const MAX_SECONDS = 30;
/** An error body that echoes a 9 MB input is itself a problem. */
const MAX_ERROR_BYTES = 64 * 1024;
/** A stack frame, a source path or a Node internal in a response body. */
const STACK = /\n\s+at |\bat [\w.$<>]+ \(|node:internal|file:\/\/|\/src\/[\w/]+\.[jt]s|\/node_modules\//;

type Part = string | { repeat: string; times: number };
type Format = 'scim' | 'api' | 'oauth';

interface Case {
  group: string;
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  auth: string;
  headers: Record<string, string>;
  contentType: string;
  json?: unknown;
  text?: Part[];
  status: number;
  scimType?: string;
  format: Format;
  bulkStatuses?: string[];
}

/** Expands {"$generate": kind, "count": n} inside a JSON fixture value. */
function generate(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(generate);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.$generate === 'string') {
      const n = Number(o.count);
      const each: Record<string, (i: number) => unknown> = {
        emails: (i) => ({ value: `g${i}@example.com` }),
        ops: () => ({ op: 'replace', path: 'title', value: 'x' }),
        emailAdds: (i) => ({ op: 'add', path: 'emails', value: [{ value: `a${i}@example.com` }] }),
        bulkDeletes: (i) => ({ method: 'DELETE', path: `/Users/no-such-${i}` }),
      };
      if (o.$generate === 'manyKeys') return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
      const f = each[o.$generate];
      if (!f) throw new Error(`unknown generator ${o.$generate}`);
      return Array.from({ length: n }, (_, i) => f(i));
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, generate(x)]));
  }
  return v;
}

const formatOf = (p: string): Format => (p.startsWith('/scim/') ? 'scim' : p.startsWith('/oauth2/') ? 'oauth' : 'api');

/* eslint-disable @typescript-eslint/no-explicit-any -- fixture records are untyped JSON */
function base(group: string, c: any, method: Case['method'], p: string): Case {
  return {
    group,
    name: c.name,
    method,
    path: p,
    auth: c.auth ?? 'admin',
    headers: c.headers ?? {},
    contentType: c.contentType ?? 'application/scim+json',
    ...(c.json !== undefined ? { json: c.json } : {}),
    ...(c.text !== undefined ? { text: c.text } : {}),
    status: c.status,
    ...(c.scimType ? { scimType: c.scimType } : {}),
    format: c.format ?? formatOf(p),
    ...(c.bulkStatuses ? { bulkStatuses: c.bulkStatuses } : {}),
  };
}

function loadCases(): Case[] {
  const cases: Case[] = [];
  const bodies = fixture('bodies.json');
  for (const c of bodies.cases) {
    for (const t of bodies.targets as string[]) {
      if (c.only && c.only !== t) continue;
      const [method, p] = t.split(' ') as [Case['method'], string];
      cases.push(base('bodies', c, method, p));
    }
  }
  for (const f of fixture('filters.json').filters) {
    const c = { name: `${f.why}: ${JSON.stringify(f.filter)}`, status: 400, scimType: f.scimType ?? 'invalidFilter' };
    // A lone surrogate cannot be put in a URL at all: that one goes in a .search body only.
    if (!/\p{Surrogate}/u.test(f.filter)) cases.push(base('filters', c, 'GET', `/scim/v2/Users?filter=${encodeURIComponent(f.filter)}`));
    cases.push(base('filters', { ...c, json: { filter: f.filter } }, 'POST', '/scim/v2/Users/.search'));
  }
  // Generated filters: the limits themselves.
  const gen = (n: number, term: (i: number) => string, join = ' or ') => Array.from({ length: n }, (_, i) => term(i)).join(join);
  const generated: [string, string][] = [
    ['180 co terms (1.1-1.5 s before the limit)', gen(180, (i) => `userName co "${i}"`)],
    ['11 co terms', gen(11, (i) => `displayName co "${i}"`)],
    ['11 sw terms in a value filter', `emails[${gen(11, (i) => `value sw "${i}"`)}]`],
    ['101 eq terms', gen(101, (i) => `externalId eq "${i}"`)],
    ['101 pr terms joined by and', gen(101, () => 'title pr', ' and ')],
    ['4097 characters', `userName eq "${'q'.repeat(4083)}"`],
    ['33 nested parentheses', `${'('.repeat(33)}userName pr${')'.repeat(33)}`],
    ['1000 nested parentheses', `${'('.repeat(1000)}userName pr${')'.repeat(1000)}`],
    ['200 nots', `${'not ('.repeat(200)}userName pr${')'.repeat(200)}`],
    ['a thousand ors', gen(1000, () => 'title pr')],
  ];
  for (const [why, filter] of generated) {
    const c = { name: `generated: ${why}`, status: 400, scimType: 'invalidFilter' };
    cases.push(base('filters', { ...c, json: { filter } }, 'POST', '/scim/v2/Users/.search'));
    if (filter.length < 6000) cases.push(base('filters', c, 'GET', `/scim/v2/Groups?filter=${encodeURIComponent(filter)}`));
  }
  for (const c of fixture('patch.json').cases) cases.push(base('patch', c, 'PATCH', c.path));
  for (const c of fixture('bulk.json').cases) cases.push(base('bulk', c, 'POST', '/scim/v2/Bulk'));
  const auth = fixture('auth.json');
  for (const t of auth.tokens) {
    for (const e of auth.endpoints) {
      cases.push(base('auth', { name: `${t.kind} (${t.why}) on ${e.method} ${e.path}`, auth: t.kind, json: e.json, status: t.status, format: e.format }, e.method, e.path));
    }
  }
  for (const c of fixture('http.json').cases) cases.push(base('http', c, c.method, c.path));
  return cases;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const expand = (s: string, vars: Record<string, string>): string => s.replace(/\{\{(\w+)\}\}/g, (m, k: string) => vars[k] ?? m);

function bodyOf(c: Case, vars: Record<string, string>): string | undefined {
  if (c.text) return c.text.map((p) => (typeof p === 'string' ? expand(p, vars) : p.repeat.repeat(p.times))).join('');
  if (c.json !== undefined) return expand(JSON.stringify(generate(c.json)), vars);
  return undefined;
}

const CASES = loadCases();

let cloud: TestCloud;
let token: string;
let credentials: Map<string, Credential>;
const vars: Record<string, string> = { ...MACROS };
let seededUserVersion = '';

/** Everything a request could write, as one comparable value. Audit and lockout rows are meant to change. */
function snapshot(): unknown {
  const q = (sql: string): unknown => cloud.server.db!.prepare(sql).raw().get();
  return {
    users: q('SELECT count(*), total(version), max(last_modified) FROM scim_users'),
    groups: q('SELECT count(*), total(version), max(last_modified) FROM scim_groups'),
    members: q('SELECT count(*) FROM scim_group_members'),
    accounts: q('SELECT count(*) FROM cloud_accounts'),
    clients: q('SELECT count(*) FROM cloud_clients'),
    hashes: q('SELECT count(*) FROM user_password_hashes'),
  };
}

before(async () => {
  cloud = await startTestCloud();
  token = await fetchToken(cloud.url, { grant_type: 'password', ...cloud.admin });
  credentials = await buildCredentials(cloud, token);
  const u = await cloud.scim('POST', '/Users', {
    schemas: [MACROS.U],
    userName: 'seeded',
    title: 'original',
    emails: [
      { value: 'seeded@work.example', type: 'work', primary: true },
      { value: 'seeded@home.example', type: 'home' },
    ],
  });
  assert.equal(u.status, 201);
  assert.equal((await cloud.scim('POST', '/Users', { schemas: [MACROS.U], userName: 'seeded-other' })).status, 201);
  const g = await cloud.scim('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'seeded-group', members: [{ value: u.body.id }] });
  assert.equal(g.status, 201);
  vars.userId = u.body.id;
  vars.groupId = g.body.id;
  // Its version after joining the group (its groups[] changed, so its version moved past W/"1").
  seededUserVersion = (await cloud.scim('GET', `/Users/${u.body.id}`)).body.meta.version;
});

after(async () => {
  await cloud?.close();
});

describe('hostile corpus: cloud API', () => {
  test('the corpus has at least 220 cases', () => {
    assert.ok(CASES.length >= 220, `only ${CASES.length} cases`);
  });

  for (const c of CASES) {
    test(`[${c.group}] ${c.name} → ${c.status}${c.scimType ? ` ${c.scimType}` : ''} (${c.method} ${c.path.slice(0, 80)})`, async () => {
      const cred: Credential = c.auth === 'admin' ? { headers: { authorization: `Bearer ${token}` } } : (credentials.get(c.auth) ?? assert.fail(`unknown auth kind ${c.auth}`));
      let url = cloud.url + expand(c.path, vars);
      if (cred.query) url += (url.includes('?') ? '&' : '?') + cred.query;
      const body = bodyOf(c, vars);
      const before = snapshot();
      const started = performance.now();
      const res = await request(url, {
        method: c.method,
        headers: { ...(body !== undefined ? { 'content-type': c.contentType } : {}), ...cred.headers, ...c.headers },
        ...(body !== undefined ? { body } : {}),
        headersTimeout: MAX_SECONDS * 1000,
        bodyTimeout: MAX_SECONDS * 1000,
      });
      const text = await res.body.text();
      const seconds = (performance.now() - started) / 1000;

      assert.ok(res.statusCode < 500, `server error ${res.statusCode}: ${text.slice(0, 300)}`);
      assert.equal(res.statusCode, c.status, `expected ${c.status}, got ${res.statusCode}: ${text.slice(0, 300)}`);
      assert.ok(seconds < MAX_SECONDS, `took ${seconds.toFixed(1)} s`);
      assert.ok(text.length <= MAX_ERROR_BYTES, `the answer is ${text.length} bytes: an echo of the input?`);
      assert.doesNotMatch(text, STACK, 'a stack trace or source path in the answer');
      assert.deepEqual(snapshot(), before, 'the request changed state');

      const parsed = JSON.parse(text) as Record<string, unknown>;
      if (c.bulkStatuses) {
        assert.deepEqual(parsed.schemas, [BULK_RESPONSE]);
        const ops = parsed.Operations as { status: string; response?: { schemas?: unknown } }[];
        assert.deepEqual(
          ops.map((o) => o.status),
          c.bulkStatuses,
        );
        for (const o of ops) assert.deepEqual(o.response?.schemas, [ERROR]);
      } else if (c.format === 'scim') {
        assert.deepEqual(parsed.schemas, [ERROR], text.slice(0, 300));
        assert.equal(parsed.status, String(c.status));
        assert.equal(typeof parsed.detail, 'string');
        assert.ok((parsed.detail as string).length > 0);
        if (c.scimType) assert.equal(parsed.scimType, c.scimType, String(parsed.detail));
      } else if (c.format === 'oauth') {
        assert.equal(typeof parsed.error, 'string', text.slice(0, 300));
      } else {
        const err = parsed.error as { code?: unknown; message?: unknown } | undefined;
        assert.equal(typeof err?.code, 'string', text.slice(0, 300));
        assert.equal(typeof err?.message, 'string');
      }
    });
  }

  test('after the corpus: healthy, and the seeded objects are as they were', async () => {
    const health = await request(`${cloud.url}/healthz`);
    assert.equal(health.statusCode, 200);
    await health.body.dump();
    const u = await cloud.scim('GET', `/Users/${vars.userId}`);
    assert.equal(u.body.title, 'original');
    assert.equal(u.body.meta.version, seededUserVersion, 'no request of the corpus changed the seeded user');
    assert.equal(u.body.emails.length, 2);
    const g = await cloud.scim('GET', `/Groups/${vars.groupId}`);
    assert.deepEqual(
      g.body.members.map((m: { value: string }) => m.value),
      [vars.userId],
    );
  });
});
