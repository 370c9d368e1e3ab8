/**
 * The overlapped cycle keeps the export's order guarantees (issue 13), on seeded random
 * directories, against the real cloud over HTTP. A recording proxy in front of the cloud logs every
 * SCIM write in the order the cloud received it and every answer in the order it gave it
 * (Bulk operations one by one). After each cycle the log must show:
 *  - a group is never written before its members: every member a group write names was created
 *    (its create answered) before the write reached the cloud, and a group's first write in a
 *    cycle already names every member it has at the end of that cycle;
 *  - a delete never overtakes the add it cancels: no write to a cloud object before its create was
 *    answered and none after its delete; a userName freed by a delete is created again only after
 *    the delete was answered;
 *  - and the cloud equals the source (users by externalId, groups' members).
 * The first cycle is the overlapped one (pages of 10, Bulk of 5: many writes in flight while
 * later pages are read and synced; a relay holds the import mid-stream until the cloud answered a
 * create, which proves the overlap); the random changes after it go through delta cycles.
 * Seeds: IDSYNC_ORDER_SEEDS (comma-separated), default 1,2.
 */
import { buffer } from 'node:stream/consumers';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { runCycle } from '../../src/engine/cycle.js';
import type { RunRecord } from '../../src/engine/runs.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { prng } from '../helpers/prng.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const SEEDS = (process.env.IDSYNC_ORDER_SEEDS ?? '1,2').split(',').map(Number);
const PEOPLE = 'ou=people,dc=lab,dc=test';
const GROUPS = 'ou=groups,dc=lab,dc=test';

/** One SCIM write as the cloud received it, or its answer as the cloud gave it. */
interface Logged {
  seq: number;
  phase: 'sent' | 'answered';
  method: string;
  /** /Users, /Users/{id}, /Groups... (without /scim/v2). */
  path: string;
  data?: { externalId?: string; userName?: string; members?: { value: string }[] };
  status?: number;
  /** The created object's id (answers to creates). */
  id?: string;
}

interface RecordingProxy {
  url: string;
  log: Logged[];
  close(): Promise<void>;
}

async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const log: Logged[] = [];
  let seq = 0;
  const note = (e: Omit<Logged, 'seq'>) => log.push({ ...e, seq: ++seq });
  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await buffer(req);
      const url = req.url ?? '/';
      const scim = url.startsWith('/scim/v2/') && req.method !== 'GET';
      type Op = { method: string; path: string; data?: Logged['data'] };
      let ops: Op[] = [];
      if (scim) {
        const parsed = body.length ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
        const path = url.slice('/scim/v2'.length).split('?')[0]!;
        ops = path === '/Bulk' ? ((parsed.Operations as Op[] | undefined) ?? []) : [{ method: req.method!, path, data: parsed as Logged['data'] }];
        for (const op of ops) note({ phase: 'sent', method: op.method.toUpperCase(), path: op.path, ...(op.data ? { data: op.data } : {}) });
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection' && k !== 'content-length') headers[k] = v;
      const upstream = await request(`${target}${url}`, { method: req.method as 'GET', headers, body: body.length ? body : undefined });
      const text = await upstream.body.text();
      if (scim && upstream.statusCode < 300) {
        const answer = text ? (JSON.parse(text) as Record<string, unknown>) : {};
        const results = ops.length && url.startsWith('/scim/v2/Bulk') ? ((answer.Operations as { status: string; location?: string }[] | undefined) ?? []) : [{ status: String(upstream.statusCode), location: typeof answer.id === 'string' ? `/${answer.id}` : undefined }];
        results.forEach((r, i) => {
          const op = ops[i]!;
          const status = Number(r.status);
          const data = op.data ? { ...(op.data.userName ? { userName: op.data.userName } : {}), ...(op.data.externalId ? { externalId: op.data.externalId } : {}) } : undefined;
          note({ phase: 'answered', method: op.method.toUpperCase(), path: op.path, status, ...(data ? { data } : {}), ...(status === 201 && r.location ? { id: r.location.split('/').pop()! } : {}) });
        });
      }
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(upstream.headers)) if (typeof v === 'string' && k !== 'transfer-encoding' && k !== 'connection' && k !== 'content-length') out[k] = v;
      res.writeHead(upstream.statusCode, out).end(text);
    })().catch((err: unknown) => res.writeHead(502).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A TCP relay in front of slapd that stops passing the directory's answers after `afterBytes` until
 * `release` resolves: the import is held mid-stream, so the test can see the cloud written while
 * the import has not finished (a serial cycle would never write; the gate then opens on its timeout).
 */
async function startGatedRelay(port: number, afterBytes: number, release: Promise<void>): Promise<{ url: string; close(): Promise<void> }> {
  let passed = 0;
  let open = false;
  void release.then(() => (open = true));
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      passed += chunk.length;
      if (open || passed < afterBytes) {
        client.write(chunk);
        return;
      }
      upstream.pause();
      void release.then(() => {
        client.write(chunk);
        upstream.resume();
      });
    });
    upstream.on('end', () => void release.then(() => client.end()));
    for (const s of [client, upstream]) s.on('error', () => (s === client ? upstream : client).destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ldap://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The source as the test built it: users by uid, groups by cn with member DNs. */
interface Source {
  users: Set<string>;
  groups: Map<string, Set<string>>;
  nextUser: number;
  nextGroup: number;
}

const userDn = (uid: string) => `uid=${uid},${PEOPLE}`;
const groupDn = (cn: string) => `cn=${cn},${GROUPS}`;
const userLdif = (uid: string) => `dn: ${userDn(uid)}\nobjectClass: inetOrgPerson\nuid: ${uid}\ncn: ${uid}\nsn: ${uid}\nmail: ${uid}@order.test\ntitle: T0\n`;
const groupLdif = (cn: string, members: Set<string>) => `dn: ${groupDn(cn)}\nobjectClass: groupOfNames\ncn: ${cn}\n${[...members].map((m) => `member: ${m}\n`).join('')}`;

function seedSource(rand: () => number, users: number, groups: number): Source {
  const s: Source = { users: new Set(), groups: new Map(), nextUser: users, nextGroup: groups };
  for (let i = 0; i < users; i++) s.users.add(`u${i}`);
  for (let g = 0; g < groups; g++) s.groups.set(`g${g}`, randomMembers(rand, s, g));
  return s;
}

/** Random users, and sometimes a group created before this one (nesting without loops). */
function randomMembers(rand: () => number, s: Source, groupIndex: number): Set<string> {
  const users = [...s.users];
  const members = new Set<string>();
  const n = 1 + Math.floor(rand() * 12);
  for (let i = 0; i < n && users.length; i++) members.add(userDn(users[Math.floor(rand() * users.length)]!));
  const earlier = [...s.groups.keys()].filter((cn) => Number(cn.slice(1)) < groupIndex);
  if (earlier.length && rand() < 0.3) members.add(groupDn(earlier[Math.floor(rand() * earlier.length)]!));
  return members;
}

/** Random changes over LDAP: deletes, re-creations under the same name, adds, modifies, membership. */
async function mutate(rand: () => number, s: Source, slapd: Slapd): Promise<void> {
  const changes: string[] = [];
  const adds: string[] = [];
  const users = [...s.users];
  const pick = () => users[Math.floor(rand() * users.length)]!;
  const removed = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const uid = pick();
    if (removed.has(uid)) continue;
    removed.add(uid);
    // Groups keep the DN (no referential integrity in slapd): a member again if the name comes back.
    changes.push(`dn: ${userDn(uid)}\nchangetype: delete\n`);
    s.users.delete(uid);
    // Half of them come back at once as a new object (a new entryUUID) with the same userName.
    if (rand() < 0.5) {
      changes.push(`dn: ${userDn(uid)}\nchangetype: add\n${userLdif(uid).split('\n').slice(1).join('\n')}`);
      s.users.add(uid);
    }
  }
  for (let i = 0; i < 5; i++) {
    const uid = `u${s.nextUser++}`;
    adds.push(userLdif(uid));
    s.users.add(uid);
  }
  for (let i = 0; i < 5; i++) {
    const uid = pick();
    if (s.users.has(uid)) changes.push(`dn: ${userDn(uid)}\nchangetype: modify\nreplace: title\ntitle: T${Math.floor(rand() * 100)}\n`);
  }
  // Membership: a new group of (partly new) users, changed members of an existing one, a group deleted.
  const cn = `g${s.nextGroup++}`;
  const fresh = randomMembers(rand, s, Number(cn.slice(1)));
  s.groups.set(cn, fresh);
  const existing = [...s.groups.keys()].filter((g) => g !== cn);
  const changed = existing[Math.floor(rand() * existing.length)]!;
  const members = randomMembers(rand, s, Number(changed.slice(1)));
  s.groups.set(changed, members);
  changes.push(`dn: ${groupDn(changed)}\nchangetype: modify\nreplace: member\n${[...members].map((m) => `member: ${m}\n`).join('')}`);
  const gone = existing.filter((g) => g !== changed && ![...s.groups.values()].some((m) => m.has(groupDn(g))))[0];
  if (gone && rand() < 0.7) {
    changes.push(`dn: ${groupDn(gone)}\nchangetype: delete\n`);
    s.groups.delete(gone);
  }
  await slapd.add(adds.join('\n'));
  await slapd.modify(changes.join('\n'));
  await slapd.add(groupLdif(cn, fresh));
}

/** The order checks over the whole log so far; `from` is where this cycle's entries begin. */
function checkOrder(log: Logged[], from: number, final: Map<string, Set<string>>, idToExternal: Map<string, string>): void {
  const createdAt = new Map<string, number>();
  const deletedAt = new Map<string, number>();
  const holder = new Map<string, string>(); // userName -> cloud id holding it (after its create answered)
  const firstGroupWrite = new Map<string, Logged>();
  for (const e of log) {
    const idOf = e.path.split('/')[2];
    if (e.phase === 'answered') {
      if (e.id) {
        createdAt.set(e.id, e.seq);
        if (e.path === '/Users' && e.data?.userName) holder.set(e.data.userName, e.id);
      }
      if (e.method === 'DELETE' && idOf) {
        deletedAt.set(idOf, e.seq);
        for (const [name, id] of holder) if (id === idOf) holder.delete(name);
      }
      continue;
    }
    // sent
    if (idOf && e.method !== 'POST') {
      const created = createdAt.get(idOf);
      assert.ok(created !== undefined && created < e.seq, `${e.method} ${e.path} reached the cloud before the create of ${idOf} was answered`);
      assert.equal(deletedAt.has(idOf), false, `${e.method} ${e.path} reached the cloud after ${idOf} was deleted`);
    }
    if (e.method === 'POST' && e.path === '/Users' && e.data?.userName) {
      const held = holder.get(e.data.userName);
      assert.equal(held, undefined, `user ${e.data.userName} was created again while ${held} still held the name (a delete overtaken by an add)`);
    }
    if (e.path.startsWith('/Groups') && (e.method === 'POST' || e.method === 'PUT')) {
      for (const m of e.data?.members ?? []) {
        const created = createdAt.get(m.value);
        assert.ok(created !== undefined && created < e.seq, `group ${e.data?.externalId} was written naming member ${m.value} before that member's create was answered`);
        assert.equal(deletedAt.has(m.value), false, `group ${e.data?.externalId} names the deleted member ${m.value}`);
      }
      if (e.seq > from && e.data?.externalId && !firstGroupWrite.has(e.data.externalId)) firstGroupWrite.set(e.data.externalId, e);
    }
  }
  // A group's first write in this cycle already names every member it ends the cycle with.
  for (const [externalId, e] of firstGroupWrite) {
    const want = final.get(externalId);
    if (!want) continue; // deleted later in the cycle
    const got = new Set((e.data?.members ?? []).map((m) => idToExternal.get(m.value) ?? m.value));
    assert.deepEqual([...got].sort(), [...want].sort(), `group ${externalId} was first written before all its members were in the cloud`);
  }
}

describe('overlapped cycle: the order the cloud sees', { skip: skipUnless('slapd') }, () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  for (const seed of SEEDS) {
    test(`seed ${seed}: groups after their members, deletes before the adds that reuse their names, cloud = source`, { timeout: 600_000 }, async () => {
      const rand = prng(seed);
      const source = seedSource(rand, 120, 12);
      const seedLdif = [...[...source.users].map(userLdif), ...[...source.groups].map(([cn, m]) => groupLdif(cn, m))].join('\n');
      const slapd = await startSlapd({ accesslog: true, seedLdif });
      cleanups.push(() => slapd.stop());
      const cloud: TestCloud = await startTestCloud();
      cleanups.push(() => cloud.close());
      const proxy = await startRecordingProxy(cloud.url);
      cleanups.push(() => proxy.close());
      // The first cycle's import is held after a few pages until the cloud has answered a create
      // (or 60 s passed: then the assertion below fails).
      let written = false;
      const release = (async () => {
        for (let waited = 0; waited < 60_000 && !proxy.log.some((e) => e.phase === 'answered' && e.id); waited += 20) await sleep(20);
        written = proxy.log.some((e) => e.phase === 'answered' && e.id);
      })();
      const relay = await startGatedRelay(slapd.port, 8_000, release);
      cleanups.push(() => relay.close());
      const lab: EngineLab = await startEngineLab({
        prefix: 'idsync-order-',
        cloud,
        cloudUrl: proxy.url,
        cloudConfig: { bulkSize: 5 },
        connectors: [{ name: 'ldap', type: 'ldap', url: relay.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn, pageSize: 10, delta: { accesslogBase: 'cn=accesslog' } }],
        credentials: { ldap: slapd.adminPassword },
        // A count: random deletions from a small directory are the point here, not the threshold.
        sync: { deletionThreshold: 1000 },
      });
      cleanups.push(() => lab.close());

      for (let cycle = 0; cycle < 4; cycle++) {
        if (cycle > 0) await mutate(rand, source, slapd);
        const from = proxy.log.length ? proxy.log[proxy.log.length - 1]!.seq : 0;
        const run: RunRecord = await runCycle(lab.ctx);
        assert.equal(run.status, 'success', `cycle ${cycle}: ${JSON.stringify(run.errors)}`);

        // The cloud now, by externalId; the source's entryUUIDs through the engine's connector space.
        const users = await cloud.all<{ id: string; externalId: string; userName: string }>('Users');
        const groups = await cloud.all<{ id: string; externalId: string; displayName: string; members?: { value: string }[] }>('Groups');
        const idToExternal = new Map([...users, ...groups].map((o) => [o.id, o.externalId]));
        const anchors = new Map(
          (lab.ctx.db.prepare("SELECT dn_norm, anchor FROM cs_objects WHERE connector = 'ldap'").all() as { dn_norm: string; anchor: string }[]).map((r) => [r.dn_norm, r.anchor]),
        );
        const anchorOf = (dn: string) => anchors.get(dn.toLowerCase())!;
        const final = new Map<string, Set<string>>();
        // LDAP names members by DN: a member is whatever object holds that DN now.
        const exists = (dn: string) => [...source.users].some((u) => userDn(u) === dn) || [...source.groups.keys()].some((g) => groupDn(g) === dn);
        for (const [cn, members] of source.groups) final.set(anchorOf(groupDn(cn)), new Set([...members].filter(exists).map(anchorOf)));
        // The order first (a wrong order shows as a wrong final state too, less clearly).
        checkOrder(proxy.log, from, final, idToExternal);
        assert.deepEqual(users.map((u) => u.userName).sort(), [...source.users].map((u) => `${u}@order.test`).sort(), `cycle ${cycle}: cloud users = source users`);
        assert.deepEqual(users.map((u) => u.externalId).sort(), [...source.users].map((u) => anchorOf(userDn(u))).sort(), `cycle ${cycle}: each user is the source's current object`);
        assert.deepEqual(groups.map((g) => g.displayName).sort(), [...source.groups.keys()].sort(), `cycle ${cycle}: cloud groups = source groups`);
        for (const g of groups) assert.deepEqual((g.members ?? []).map((m) => idToExternal.get(m.value)).sort(), [...final.get(g.externalId)!].sort(), `cycle ${cycle}: members of ${g.displayName}`);

        // The first cycle overlapped: the cloud created users while the import was held mid-stream.
        if (cycle === 0) assert.ok(written, 'the initial cycle exported users before its import had finished');
      }
    });
  }
});
