/**
 * The two SCIM hostings must answer alike: the worker thread (default for a database file; its own
 * SQLite connection, bodies parsed there) and in-process (the same handler on the caller's thread).
 * A seeded random sequence of requests, valid and not (creates with colliding names, PATCH, PUT,
 * DELETE, filters, groups, Bulk with references and failures, malformed and poisoned bodies, If-Match),
 * is sent to both over HTTP; every status, header that matters and body must be the same once the
 * generated ids and timestamps are replaced by symbols.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { prng } from '../../helpers/prng.js';
import { BULK, GROUP, PATCH_OP, startScim, user, type Harness, type Res } from './helpers.js';

let worker: Harness;
let inProcess: Harness;
before(async () => {
  worker = await startScim({ hosting: 'worker' });
  inProcess = await startScim({ hosting: 'in-process' });
});
after(async () => {
  await worker?.close();
  await inProcess?.close();
});

interface Side {
  h: Harness;
  users: string[];
  groups: string[];
  versions: Map<string, string>;
}

const ID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g;

/** The response with this side's ids as #n (creation order), timestamps and the base URL as symbols. */
function normalise(side: Side, res: Res): string {
  const names = new Map<string, string>();
  side.users.forEach((id, i) => names.set(id, `#u${i}`));
  side.groups.forEach((id, i) => names.set(id, `#g${i}`));
  const text = `${res.status} etag=${String(res.headers.etag ?? '')} location=${String(res.headers.location ?? '')} ${res.text}`;
  const symbolic = text
    .split(side.h.base)
    .join('BASE')
    .replace(ID, (id) => names.get(id) ?? '#new')
    .replace(TIME, 'TIME');
  // Members and a user's groups are listed in the order of their (random) ids: compare them as sets.
  return symbolic.replace(/\{.*\}$/s, (json) => JSON.stringify(sortSets(JSON.parse(json))));
}

function sortSets(v: unknown, key = ''): unknown {
  if (Array.isArray(v)) {
    const items = v.map((x) => sortSets(x));
    return key === 'members' || key === 'groups' ? items.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))) : items;
  }
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, sortSets(x, k)]));
  return v;
}

/** Records ids created by a response, in order, so both sides name them alike. */
function learn(side: Side, res: Res): void {
  const take = (location: unknown) => {
    if (typeof location !== 'string') return;
    const m = /\/(Users|Groups)\/([^/]+)$/.exec(location);
    if (!m) return;
    const list = m[1] === 'Users' ? side.users : side.groups;
    if (!list.includes(m[2]!)) list.push(m[2]!);
  };
  if (res.status === 201) take(res.body?.meta?.location);
  for (const op of res.body?.Operations ?? []) if (op?.status === '201') take(op.location);
}

describe('SCIM hosting: worker thread and in-process agree', () => {
  test('a seeded random sequence of 160 requests gets the same answers from both', async () => {
    const sides: Side[] = [worker, inProcess].map((h) => ({ h, users: [], groups: [], versions: new Map() }));
    const rnd = prng(0x5c1d);
    const pick = (n: number) => Math.floor(rnd() * n);
    const name = () => `user-${pick(12)}@example.com`; // a small name space: collisions happen
    // Group names are unique: groups of one name are listed in the order of their (random) ids.

    // Each step: a request built from the random choices and the side's ids.
    type Step = (s: Side) => { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; path: string; body?: unknown; headers?: Record<string, string> };
    for (let n = 0; n < 160; n++) {
      const kind = pick(12);
      const u = pick(8);
      const g = pick(3);
      const nm = name();
      const nm2 = name();
      const title = `t${pick(4)}`;
      const filterTerm = pick(3);
      const active = pick(2) === 0; // every draw happens here, once for both sides
      const uid = (s: Side) => s.users[u % Math.max(1, s.users.length)] ?? 'missing';
      const gid = (s: Side) => s.groups[g % Math.max(1, s.groups.length)] ?? 'missing';
      const steps: Step[] = [
        () => ({ method: 'POST', path: '/Users', body: user(nm, { externalId: `ext-${nm}`, emails: [{ value: nm, type: 'work' }] }) }),
        (s) => ({ method: 'PATCH', path: `/Users/${uid(s)}`, body: { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'title', value: title }, { op: 'add', path: 'emails', value: [{ value: nm2 }] }] } }),
        (s) => ({ method: 'PUT', path: `/Users/${uid(s)}`, body: user(nm, { displayName: title }) }),
        (s) => ({ method: 'DELETE', path: `/Users/${uid(s)}` }),
        () => ({ method: 'GET', path: `/Users?filter=${encodeURIComponent(['title eq "t1"', `userName sw "user-${filterTerm}"`, 'emails pr and not (title pr)'][filterTerm]!)}&sortBy=userName` }),
        (s) => ({ method: 'GET', path: `/Users/${uid(s)}?attributes=userName,emails` }),
        (s) => ({ method: 'POST', path: '/Groups', body: { schemas: [GROUP], displayName: `group-${n}`, members: s.users.slice(0, 3).map((value) => ({ value })) } }),
        (s) => ({ method: 'PATCH', path: `/Groups/${gid(s)}`, body: { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: uid(s) }] }] } }),
        () => ({
          method: 'POST',
          path: '/Bulk',
          body: {
            schemas: [BULK],
            Operations: [
              { method: 'POST', path: '/Users', bulkId: 'a', data: user(nm, { externalId: `bulk-${nm}` }) },
              { method: 'POST', path: '/Groups', bulkId: 'g', data: { displayName: `bulk group ${n}`, members: [{ value: 'bulkId:a' }] } },
              { method: 'PATCH', path: '/Users/bulkId:a', data: { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'title', value: title }] } },
              { method: 'DELETE', path: '/Users/no-such-user' },
              { method: 'POST', path: '/Users', bulkId: 'b', data: user(nm2) },
            ],
          },
        }),
        () => ({ method: 'POST', path: '/Users', body: '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":' }),
        () => ({ method: 'POST', path: '/Users', body: `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"${nm}","__proto__":{"x":1}}` }),
        (s) => ({ method: 'PATCH', path: `/Users/${uid(s)}`, headers: { 'if-match': 'W/"1"' }, body: { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: active }] } }),
      ];
      const step = steps[kind]!;
      const answers: string[] = [];
      for (const s of sides) {
        const r = step(s);
        const res = await s.h.call(r.method, r.path, r.body, r.headers);
        learn(s, res);
        answers.push(normalise(s, res));
      }
      assert.equal(answers[0], answers[1], `request ${n} (kind ${kind}) answered differently`);
    }
    // The sequence did reach the interesting outcomes, on both sides alike.
    assert.ok(sides[0]!.users.length > 5 && sides[0]!.groups.length > 2, 'the sequence created users and groups');
  });
});
