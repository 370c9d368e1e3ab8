/**
 * The cloud directory on several nodes (issue 15 point 3): two real `idsync cloud serve` processes on
 * one private PostgreSQL 15, spoken to by a round-robin client. Nothing node-local may matter: a
 * token from one node works on the other (and its revocation too), a lockout counted on one holds on
 * the other, and concurrent SCIM writers through both nodes lose nothing and create no duplicate —
 * every conflict is a 409 (uniqueness) or a 412 (If-Match), as RFC 7644 §3.12 says. Production
 * defaults throughout (lockout threshold 10, scrypt cost).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { prng } from '../helpers/prng.js';
import { orgIdHash } from '../../src/passwords/hash.js';
import { skipUnlessPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { captured, spawnIdsync, type Proc } from '../helpers/processes.js';

const ADMIN_PASSWORD = 'Multi-node-admin-pass-1!';
const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

interface Node {
  url: string;
  proc: Proc;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- SCIM bodies are untyped JSON
type Json = any;

async function call(url: string, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', p: string, opts: { token?: string; body?: unknown; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Json; headers: Record<string, unknown> }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(opts.form).toString();
  } else if (opts.body !== undefined) {
    headers['content-type'] = p.startsWith('/scim/') ? 'application/scim+json' : 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await request(url + p, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

async function startNode(database: string, password: string): Promise<Node> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'idsync-cloud-node-'));
  // Behind a load balancer every node has the same public URL: the tokens' issuer.
  const proc = spawnIdsync(['cloud', 'serve', '--database', database, '--data', dataDir, '--port', '0', '--public-url', 'http://cloud.multi.test', '--json', '--log-level', 'error'], undefined, {
    IDSYNC_CLOUD_ADMIN_PASSWORD: ADMIN_PASSWORD,
    IDSYNC_CLOUD_DATABASE_PASSWORD: password,
  });
  proc.exited.then(() => rmSync(dataDir, { recursive: true, force: true }), () => undefined);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const m = /"url":\s*"(http:\/\/127\.0\.0\.1:\d+)"/.exec(proc.out.text);
    if (m) return { url: m[1]!, proc };
    if (proc.child.exitCode !== null) throw new Error(`cloud serve exited: ${proc.out.text}`);
    if (Date.now() > deadline) throw new Error(`cloud serve did not start: ${proc.out.text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function token(url: string, username: string, password: string): Promise<string> {
  const r = await call(url, 'POST', '/oauth2/token', { form: { grant_type: 'password', username, password, scope: 'idsync.api' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.access_token as string;
}

describe('the cloud directory on two nodes sharing PostgreSQL', { skip: skipUnlessPostgres() }, () => {
  let pg: TestPostgres;
  let nodes: Node[] = [];
  let adminToken: string;
  let turn = 0;
  /** A round-robin client: every request goes to the next node. */
  const rr = () => nodes[turn++ % nodes.length]!.url;

  before(async () => {
    pg = await startPostgres();
    const url = new URL(await pg.createDatabase());
    // The password comes from the environment, not from the URL (nor the command line).
    const password = decodeURIComponent(url.password);
    url.password = '';
    // Both nodes start at once on an empty database: migrations, the first signing key and the
    // administrator are made exactly once.
    nodes = await Promise.all([startNode(url.toString(), password), startNode(url.toString(), password)]);
    adminToken = await token(nodes[0]!.url, 'admin', ADMIN_PASSWORD);
    for (const c of captured) assert.ok(!c.text.includes(password), 'the database password is never printed');
  });

  after(async () => {
    for (const n of nodes) {
      n.proc.child.kill('SIGTERM');
      await n.proc.exited;
    }
    await pg?.stop();
  });

  test('a wrong database password is a clear error that does not print the password', async () => {
    const url = new URL(await pg.createDatabase());
    url.password = '';
    const wrong = 'Wrong-db-password-7';
    const proc = spawnIdsync(['cloud', 'serve', '--database', url.toString(), '--port', '0', '--json'], undefined, { IDSYNC_CLOUD_ADMIN_PASSWORD: ADMIN_PASSWORD, IDSYNC_CLOUD_DATABASE_PASSWORD: wrong });
    const code = await proc.exited;
    assert.notEqual(code, 0);
    assert.match(proc.out.text, /STORE_FAILED/);
    assert.match(proc.out.text, /password authentication failed/);
    assert.ok(!proc.out.text.includes(wrong), 'the password is not printed');
  });

  test('both nodes publish the same signing key; a token issued by one works on the other, and its revocation too', async () => {
    const [a, b] = nodes as [Node, Node];
    const jwksA = await call(a.url, 'GET', '/.well-known/jwks.json');
    const jwksB = await call(b.url, 'GET', '/.well-known/jwks.json');
    assert.equal(jwksA.body.keys.length, 1, 'one key, though both nodes started on an empty database at once');
    assert.deepEqual(jwksA.body, jwksB.body);

    const created = await call(a.url, 'POST', '/admin/v1/accounts', { token: adminToken, body: { username: 'sync-multi', password: 'Sync-multi-pass-1!', role: 'DirectorySynchronizationAccounts' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const t = await token(a.url, 'sync-multi', 'Sync-multi-pass-1!');
    assert.equal((await call(b.url, 'GET', '/scim/v2/Users?count=1', { token: t })).status, 200, 'a token of node A opens node B');
    // A password change on node B revokes the token everywhere, at once.
    const changed = await call(b.url, 'PATCH', '/admin/v1/accounts/sync-multi', { token: adminToken, body: { password: 'Sync-multi-pass-2!' } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal((await call(a.url, 'GET', '/scim/v2/Users?count=1', { token: t })).status, 401, 'revoked on node A too');
    assert.equal((await call(b.url, 'GET', '/scim/v2/Users?count=1', { token: t })).status, 401);
    const t2 = await token(b.url, 'sync-multi', 'Sync-multi-pass-2!');
    assert.equal((await call(a.url, 'GET', '/scim/v2/Users?count=1', { token: t2 })).status, 200);
  });

  test('a lockout counted on one node holds on the other (different wrong passwords count, repeats do not)', async () => {
    const [a, b] = nodes as [Node, Node];
    const created = await call(a.url, 'POST', '/admin/v1/accounts', { token: adminToken, body: { username: 'sync-lock', password: 'Sync-lock-pass-1!', role: 'DirectorySynchronizationAccounts' } });
    assert.equal(created.status, 201);
    const attempt = (url: string, password: string) => call(url, 'POST', '/oauth2/token', { form: { grant_type: 'password', username: 'sync-lock', password, scope: 'idsync.api' } });
    // Nine different wrong passwords, alternating nodes: counted into one counter, not yet locked.
    for (let i = 0; i < 9; i++) {
      const r = await attempt(i % 2 ? b.url : a.url, `wrong-${i}`);
      assert.equal(r.status, 400);
      assert.equal(r.body.lockout, undefined, `attempt ${i + 1} is refused, not locked`);
    }
    // A client retrying its last wrong password (one of the last three remembered) on either node: not counted.
    for (let i = 0; i < 5; i++) {
      const r = await attempt(i % 2 ? a.url : b.url, 'wrong-8');
      assert.equal(r.body.lockout, undefined, 'a repeat of a remembered wrong password is not counted');
    }
    // The tenth different wrong password (on node B) locks the counter.
    const tenth = await attempt(b.url, 'wrong-9');
    assert.equal(tenth.status, 400);
    // Locked on node A too: the right password is not even checked there.
    const right = await attempt(a.url, 'Sync-lock-pass-1!');
    assert.equal(right.status, 400, JSON.stringify(right.body));
    assert.deepEqual(right.body.error_codes, [50053]);
    assert.ok(right.body.lockout.remaining_seconds > 0);
    const onB = await attempt(b.url, 'Sync-lock-pass-1!');
    assert.deepEqual(onB.body.error_codes, [50053], 'and on node B');
    // The audit log (shared) recorded the lockout, whichever node is asked.
    const audit = await call(b.url, 'GET', '/admin/v1/audit?type=token', { token: adminToken });
    assert.ok((audit.body.records as Json[]).some((r) => r.subject === 'sync-lock' && r.reason === 'locked_out'));
  });

  test('password hashes on PostgreSQL: a new externalId drops the hash (the trigger), a far-future changedAt does not block a real change', async () => {
    const [a, b] = nodes as [Node, Node];
    const user = await call(a.url, 'POST', '/scim/v2/Users', { token: adminToken, body: { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'pg-grace@example.com', externalId: 'pg-ext-1', active: true } });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    const send = (url: string, item: Record<string, string>) => call(url, 'POST', '/api/v1/passwordHashes', { token: adminToken, body: { items: [item] } });
    const signIn = (url: string, password: string) => call(url, 'POST', '/oauth2/token', { form: { grant_type: 'password', username: 'pg-grace@example.com', password } });
    assert.equal((await send(a.url, { externalId: 'pg-ext-1', hash: await orgIdHash('Grace future'), changedAt: '2036-01-01T00:00:00Z' })).status, 200);
    assert.equal((await signIn(b.url, 'Grace future')).status, 200);
    await send(b.url, { externalId: 'pg-ext-1', hash: await orgIdHash('Grace real') });
    assert.equal((await signIn(a.url, 'Grace real')).status, 200, 'the real change is not blocked by the one dated 2036');
    const patched = await call(b.url, 'PATCH', `/scim/v2/Users/${user.body.id}`, { token: adminToken, body: { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'externalId', value: 'pg-ext-2' }] } });
    assert.ok([200, 204].includes(patched.status), JSON.stringify(patched.body));
    assert.equal((await signIn(a.url, 'Grace real')).status, 400, "the old identity's password no longer signs in");
    await send(a.url, { externalId: 'pg-ext-2', hash: await orgIdHash('Grace second'), changedAt: '2026-01-01T00:00:00Z' });
    assert.equal((await signIn(b.url, 'Grace second')).status, 200);
  });

  test('8 concurrent writers through both nodes: the same userNames are created once, every other try is 409 uniqueness', async () => {
    const rand = prng(15_3);
    const names = Array.from({ length: 25 }, (_, i) => `race-${i}@multi.example`);
    const statuses: number[] = [];
    const winners = new Map<string, number>();
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        const mine = [...names].sort(() => rand() - 0.5);
        for (const userName of mine) {
          const r = await call(rr(), 'POST', '/scim/v2/Users', { token: adminToken, body: { schemas: [USER_SCHEMA], userName, externalId: `ext-${userName}`, displayName: `writer ${w}` } });
          statuses.push(r.status);
          if (r.status === 201) winners.set(userName, (winners.get(userName) ?? 0) + 1);
          else {
            assert.equal(r.status, 409, JSON.stringify(r.body));
            assert.equal(r.body.scimType, 'uniqueness');
          }
        }
      }),
    );
    assert.equal(statuses.length, 8 * names.length);
    for (const n of names) assert.equal(winners.get(n), 1, `${n} was created exactly once`);
    const list = await call(rr(), 'GET', `/scim/v2/Users?filter=${encodeURIComponent('userName sw "race-"')}&count=1000`, { token: adminToken });
    assert.equal(list.body.totalResults, names.length, 'no duplicate user');
    // Case-insensitive uniqueness holds across nodes too.
    const upper = await call(rr(), 'POST', '/scim/v2/Users', { token: adminToken, body: { schemas: [USER_SCHEMA], userName: 'RACE-0@MULTI.EXAMPLE' } });
    assert.equal(upper.status, 409);
  });

  test('8 concurrent writers patching the same groups through both nodes: no member is lost; If-Match conflicts are 412', async () => {
    const groups: string[] = [];
    for (let g = 0; g < 3; g++) {
      const r = await call(rr(), 'POST', '/scim/v2/Groups', { token: adminToken, body: { schemas: [GROUP_SCHEMA], displayName: `shared-${g}` } });
      assert.equal(r.status, 201);
      groups.push(r.body.id as string);
    }
    // Ten users per writer.
    const usersOf: string[][] = [];
    for (let w = 0; w < 8; w++) {
      usersOf.push([]);
      for (let i = 0; i < 10; i++) {
        const r = await call(rr(), 'POST', '/scim/v2/Users', { token: adminToken, body: { schemas: [USER_SCHEMA], userName: `member-${w}-${i}@multi.example` } });
        assert.equal(r.status, 201);
        usersOf[w]!.push(r.body.id as string);
      }
    }
    const statuses = new Map<number, number>();
    const seen = (s: number) => statuses.set(s, (statuses.get(s) ?? 0) + 1);
    await Promise.all(
      usersOf.map(async (users, w) => {
        for (const userId of users) {
          for (const groupId of groups) {
            const add = { schemas: [PATCH_OP], Operations: [{ op: 'add', path: 'members', value: [{ value: userId }] }] };
            if (w % 2 === 0) {
              // Plain PATCH: concurrent writers of one group queue on its row; none is lost.
              const r = await call(rr(), 'PATCH', `/scim/v2/Groups/${groupId}?attributes=id`, { token: adminToken, body: add });
              seen(r.status);
              assert.equal(r.status, 200, JSON.stringify(r.body));
            } else {
              // Read, then write with If-Match: a stale version is 412 Precondition Failed; read again and retry.
              for (let tries = 0; ; tries++) {
                const cur = await call(rr(), 'GET', `/scim/v2/Groups/${groupId}?attributes=id`, { token: adminToken });
                const r = await call(rr(), 'PATCH', `/scim/v2/Groups/${groupId}?attributes=id`, { token: adminToken, body: add, headers: { 'if-match': String(cur.headers.etag) } });
                seen(r.status);
                if (r.status === 200) break;
                assert.equal(r.status, 412, JSON.stringify(r.body));
                assert.ok(tries < 500, 'a writer gets through eventually');
              }
            }
          }
        }
      }),
    );
    for (const s of statuses.keys()) assert.ok(s === 200 || s === 412, `status ${s}: only 200, or 412 for a stale If-Match`);
    for (const groupId of groups) {
      const g = await call(rr(), 'GET', `/scim/v2/Groups/${groupId}`, { token: adminToken });
      const members = new Set((g.body.members as Json[]).map((m) => m.value as string));
      assert.equal(members.size, 80, `group ${g.body.displayName}: every writer's members are there`);
      for (const u of usersOf.flat()) assert.ok(members.has(u));
    }
  });

  test('a Bulk request through either node is atomic per operation', async () => {
    const bulk = {
      schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'],
      Operations: [
        { method: 'POST', bulkId: 'a', path: '/Users', data: { schemas: [USER_SCHEMA], userName: 'bulk-new@multi.example' } },
        { method: 'POST', bulkId: 'b', path: '/Users', data: { schemas: [USER_SCHEMA], userName: 'race-1@multi.example' } },
        { method: 'POST', bulkId: 'g', path: '/Groups', data: { schemas: [GROUP_SCHEMA], displayName: 'bulk-group', members: [{ value: 'bulkId:a' }, { value: 'no-such-id' }] } },
        { method: 'POST', bulkId: 'h', path: '/Groups', data: { schemas: [GROUP_SCHEMA], displayName: 'bulk-group-2', members: [{ value: 'bulkId:a' }] } },
      ],
    };
    const r = await call(rr(), 'POST', '/scim/v2/Bulk', { token: adminToken, body: bulk });
    assert.equal(r.status, 200);
    const ops = r.body.Operations as Json[];
    assert.deepEqual(
      ops.map((o) => o.status),
      ['201', '409', '400', '201'],
    );
    const failedGroup = await call(rr(), 'GET', `/scim/v2/Groups?filter=${encodeURIComponent('displayName eq "bulk-group"')}`, { token: adminToken });
    assert.equal(failedGroup.body.totalResults, 0, 'the failed operation left nothing behind');
  });
});
