/**
 * Issue 15, the HA acceptance: two real `idsync serve` nodes on one real PostgreSQL 15, a real slapd
 * source and the real cloud directory. While a stream of changes goes on — 500 users modified in
 * slapd, 200 password change notifications sent to whichever node answers — the leader is killed
 * with SIGKILL three times (and restarted, so there are always two nodes) and once paused with
 * SIGSTOP past its lease, then resumed. Asserted, with production defaults (5 s lease, 1 s renewal,
 * deletion threshold, lockout):
 *  - every change arrives exactly once: each modified user is at meta.version 2 (created, modified
 *    once: a lost change leaves 1, an export by a deposed leader or a stale rewrite makes it more)
 *    with the new value; each changed password signs in (one real sign-in each);
 *  - each takeover, from the kill (or the pause) to the new leader's first write — the new token
 *    reaching the cloud directory, recorded there — is at most 10 s;
 *  - the resumed old leader writes nothing: no run of its process starts or finishes after the
 *    takeover, the cloud's fence never went back, and it reports the lost lease (6551).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { request } from 'undici';
import { stringify } from 'yaml';
import { generateKey } from '../../../src/credentials/key.js';
import { PCN_PATH } from '../../../src/passwords/handlers.js';
import { startTestCloud, type TestCloud } from '../../helpers/cloud.js';
import { inParallel, range } from '../../helpers/passwords.js';
import { skipUnlessPostgres, startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { setCredentials, signIn, spawnIdsync, stopProc, until, type Proc } from '../../helpers/processes.js';
import { startSlapd, type Slapd } from '../../helpers/slapd.js';

const USERS = 500;
const PASSWORDS = 200;
const TAKEOVER_LIMIT_MS = 10_000;
const dnOf = (i: number, base: string): string => `uid=ha${i},ou=people,${base}`;
const mailOf = (i: number): string => `ha${i}@example.test`;

interface Node {
  name: string;
  config: string;
  proc: Proc;
  url: string;
}

interface HaJson {
  role: 'leader' | 'standby';
  token: number | null;
  leader: { node: string; token: number; live: boolean } | null;
  nodes: { node: string; role: string; silentSeconds: number }[];
}

describe('sync service HA: two nodes, a leader killed three times and paused once', { skip: skipUnlessPostgres() }, () => {
  let pgc: TestPostgres;
  let slapd: Slapd;
  let cloud: TestCloud;
  let dbUrl: string;
  let dbPassword: string;
  let dir: string;
  const agentToken = randomBytes(24).toString('base64url');
  const secretKey = generateKey().toString('base64');
  const nodes = new Map<string, Node>();
  /** Nodes killed (their output kept for the log). */
  const gone: Node[] = [];
  let passed = false;
  const env = (): NodeJS.ProcessEnv => ({ IDSYNC_STORE_PASSWORD: dbPassword, IDSYNC_SECRET_KEY: secretKey });

  const writeConfig = (name: string): string => {
    const file = path.join(dir, `${name}.yaml`);
    const u = new URL(dbUrl);
    dbPassword = decodeURIComponent(u.password);
    u.password = '';
    writeFileSync(
      file,
      stringify({
        dataDir: `./${name}-data`,
        store: { type: 'postgres', url: u.toString() },
        ha: { node: name },
        connectors: [{ name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn }],
        cloud: { url: cloud.url, auth: { type: 'client_credentials', clientId: cloud.syncClientId } },
      }),
    );
    return file;
  };

  const startNode = async (name: string): Promise<Node> => {
    const config = path.join(dir, `${name}.yaml`);
    const proc = spawnIdsync(['-c', config, 'serve', '--port', '0', '--interval', '2s', '--log-level', 'info'], undefined, env());
    const url = await until(`${name} to listen`, () => /listening on (\S+)/.exec(proc.out.text)?.[1], 60_000);
    const node = { name, config, proc, url };
    nodes.set(name, node);
    return node;
  };

  const ha = async (node: Node): Promise<HaJson | undefined> => {
    try {
      const res = await request(`${node.url}/status`, { headersTimeout: 3000, bodyTimeout: 3000 });
      const body = (await res.body.json()) as { ha?: HaJson };
      return body.ha;
    } catch {
      return undefined;
    }
  };

  const leader = async (): Promise<Node> =>
    until(
      'a leader',
      async () => {
        for (const n of nodes.values()) if ((await ha(n))?.role === 'leader') return n;
        return undefined;
      },
      30_000,
      100,
    );

  /** The highest fencing token the cloud has seen, and when it first saw it (the new leader's first write). */
  const fence = async (): Promise<{ highest: number; raisedAt: number; refused: number }> => {
    const row = await cloud.server.store.get<{ highest: number; raised_at: string; refused: number }>('SELECT highest, raised_at, refused FROM sync_fences');
    return row ? { highest: Number(row.highest), raisedAt: Date.parse(row.raised_at), refused: Number(row.refused) } : { highest: 0, raisedAt: 0, refused: 0 };
  };

  const pcn = async (i: number, password: string): Promise<void> => {
    // To whichever node answers: a standby takes notifications as well as the leader.
    for (let attempt = 0; ; attempt++) {
      const list = [...nodes.values()];
      const node = list[(i + attempt) % list.length]!;
      try {
        const res = await request(`${node.url}${PCN_PATH}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${agentToken}` },
          body: JSON.stringify({ user: dnOf(i, slapd.baseDn), password }),
          headersTimeout: 3000,
          bodyTimeout: 3000,
        });
        const text = await res.body.text();
        if (res.statusCode === 202) return;
        if (attempt > 20) assert.fail(`PCN for ha${i}: HTTP ${res.statusCode} ${text}`);
      } catch {
        if (attempt > 40) throw new Error(`no node took the PCN for ha${i}`);
      }
      await sleep(250);
    }
  };

  before(async () => {
    pgc = await startPostgres();
    dbUrl = await pgc.createDatabase();
    const seed: string[] = [];
    for (const i of range(USERS)) {
      seed.push(`dn: ${dnOf(i, 'dc=lab,dc=test')}`, 'objectClass: inetOrgPerson', `uid: ha${i}`, `cn: HA User ${i}`, `sn: User${i}`, `mail: ${mailOf(i)}`, 'title: v1', '');
    }
    slapd = await startSlapd({ seedLdif: seed.join('\n') });
    cloud = await startTestCloud();
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-ha-'));
    writeConfig('node-a');
    writeConfig('node-b');
    // The CLI children inherit this process's environment: the store password and the shared data key.
    Object.assign(process.env, env());
    await setCredentials(path.join(dir, 'node-a.yaml'), [
      ['cloud', cloud.syncSecret],
      ['ldap', slapd.adminPassword],
      ['agent', agentToken, ['--no-validate']],
    ]);
  });

  after(async () => {
    // The nodes' own words, when something failed (the assertion says what; these say why).
    if (!passed) {
      for (const n of [...nodes.values(), ...gone]) {
        const own = n.proc.out.text.split('\n').filter((l) => !/incoming request|request completed/.test(l));
        console.log(`# --- ${n.name} (pid ${n.proc.child.pid}) ---\n${own.slice(-40).join('\n').replace(/^/gm, '# ')}`);
        console.log(`# status: ${JSON.stringify(await ha(n))}`);
      }
      const c = new pg.Client({ connectionString: dbUrl });
      await c.connect().then(
        async () => {
          const runs = await c.query('SELECT id, status, error FROM runs ORDER BY id DESC LIMIT 3');
          const errors = await c.query('SELECT run_id, step, code, message FROM run_errors ORDER BY run_id DESC LIMIT 5');
          const lease = await c.query('SELECT holder, token, expires_at, now() AS now FROM ha_lease');
          const activity = await c.query("SELECT pid, application_name, state, wait_event_type, left(query, 120) AS query, now() - xact_start AS xact FROM pg_stat_activity WHERE datname = current_database()");
          console.log(`# lease: ${JSON.stringify(lease.rows)}\n# activity: ${JSON.stringify(activity.rows)}`);
          console.log(`# runs: ${JSON.stringify(runs.rows)}\n# run errors: ${JSON.stringify(errors.rows)}`);
          await c.end();
        },
        () => undefined,
      );
    }
    for (const n of nodes.values()) {
      n.proc.child.kill('SIGCONT');
      await stopProc(n.proc);
    }
    await cloud?.close();
    await slapd?.stop();
    await pgc?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('every change exactly once, takeover ≤ 10 s each time, the resumed old leader writes nothing', async () => {
    await startNode('node-a');
    await startNode('node-b');
    const first = await leader();
    // The initial export: every user once, at version 1.
    await until('the initial export', async () => ((await cloud.all('Users')).length === USERS ? true : undefined), 60_000, 500);

    // The stream: 500 modifications (one per user) and 200 password changes, spread over the failovers.
    let streaming = true;
    const modified = new Set<number>();
    const changed = new Map<number, string>();
    const stream = (async () => {
      const order = range(USERS);
      const pw = range(PASSWORDS).map((k) => k * 2 + 1); // users 1, 3, 5…: some also modified, at other times
      let m = 0;
      let p = 0;
      while (m < order.length || p < pw.length) {
        const batch = order.slice(m, m + 10);
        m += batch.length;
        if (batch.length) {
          await slapd.modify(batch.map((i) => `dn: ${dnOf(i, slapd.baseDn)}\nchangetype: modify\nreplace: title\ntitle: v2\n`).join('\n'));
          for (const i of batch) modified.add(i);
        }
        const pws = pw.slice(p, p + 4);
        p += pws.length;
        await inParallel(pws, 4, async (i) => {
          const password = `Ha-${i}-${randomBytes(4).toString('hex')}!`;
          await pcn(i, password);
          changed.set(i, password);
        });
        await sleep(400);
      }
      streaming = false;
    })();

    const takeovers: { how: string; ms: number; from: string; to: string }[] = [];
    let pausedNode: Node | undefined;
    let pausedPid = 0;
    let pausedTakeoverAt = 0;
    /** When the resumed node may lead again: the next kill (it may win that takeover, legitimately). */
    let pausedWindowEnd = 0;
    for (const how of ['SIGKILL', 'SIGKILL', 'SIGSTOP', 'SIGKILL'] as const) {
      await sleep(3000); // the leader works a while
      const old = await leader();
      const before = await fence();
      const t0 = Date.now();
      if (pausedNode && pausedWindowEnd === 0) pausedWindowEnd = t0;
      old.proc.child.kill(how);
      const after = await until(`the takeover after ${how} of ${old.name}`, async () => {
        const f = await fence();
        return f.highest > before.highest ? f : undefined;
      }, 30_000, 50);
      const next = await leader();
      assert.notEqual(next.name, old.name, 'another node leads');
      const ms = after.raisedAt - t0;
      takeovers.push({ how, ms, from: old.name, to: next.name });
      if (how === 'SIGKILL') {
        await old.proc.exited;
        nodes.delete(old.name);
        gone.push(old);
        await startNode(old.name); // back as a standby
      } else {
        pausedNode = old;
        pausedPid = old.proc.child.pid!;
        pausedTakeoverAt = after.raisedAt;
        await sleep(3000); // well past its lease
        old.proc.child.kill('SIGCONT');
        await until('the resumed node to know it lost the lease', async () => {
          // A node that died on resume (CI once saw its delivery loop's rejection end it) fails here, at once.
          if (old.proc.child.exitCode !== null) throw new Error(`the resumed node exited (${old.proc.child.exitCode}):\n${old.proc.out.text.slice(-3000)}`);
          return (await ha(old))?.role === 'standby' ? true : undefined;
        }, 90_000, 250);
      }
    }
    await stream;
    assert.equal(streaming, false);
    console.log(`# takeovers: ${takeovers.map((t) => `${t.how} ${t.from}→${t.to} ${t.ms} ms`).join('; ')}`);
    for (const t of takeovers) assert.ok(t.ms <= TAKEOVER_LIMIT_MS, `takeover after ${t.how} took ${t.ms} ms (limit ${TAKEOVER_LIMIT_MS} ms)`);
    assert.notEqual(first, undefined);

    // Everything arrives: each modified user once, each password.
    await until('every modification in the cloud', async () => {
      const users = await cloud.all('Users');
      return users.filter((u: { title?: string }) => u.title === 'v2').length === USERS ? true : undefined;
    }, 120_000, 1000);
    for (const [i, password] of changed) await until(`ha${i}'s password in the cloud`, () => cloud.holdsPassword(mailOf(i), password), 60_000, 200);

    const users = await cloud.all('Users');
    const versions = new Map<string, number>();
    for (const u of users as { userName: string; title?: string; meta: { version: string } }[]) {
      assert.equal(u.title, 'v2', `${u.userName} has the new value`);
      const v = Number(/(\d+)/.exec(u.meta.version)?.[1]);
      versions.set(u.userName, v);
    }
    const wrong = [...versions].filter(([, v]) => v !== 2);
    assert.deepEqual(wrong, [], 'every user at meta.version 2: created once, modified once');
    assert.equal(modified.size, USERS);
    assert.equal(changed.size, PASSWORDS);
    let signedIn = 0;
    for (const [i, password] of changed) if ((await signIn(cloud.url, mailOf(i), password)) === 200) signedIn++;
    assert.equal(signedIn, PASSWORDS, 'every changed password signs in');

    // The resumed old leader wrote nothing after the takeover.
    assert.ok(pausedNode);
    const admin = new pg.Client({ connectionString: dbUrl });
    await admin.connect();
    try {
      // From the takeover to the next kill (after which the resumed node may win a term of its own).
      const runs = await admin.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM runs WHERE pid = $1 AND ((started_at > $2 AND started_at < $3) OR (ended_at > $2 AND ended_at < $3 AND status <> 'interrupted'))",
        [pausedPid, new Date(pausedTakeoverAt).toISOString(), new Date(pausedWindowEnd || Date.now()).toISOString()],
      );
      assert.equal(runs.rows[0]!.n, 0, 'no run of the resumed node started or finished between the takeover and the next kill');
      const lost = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM events WHERE id = 6551 AND details LIKE $1", [`%${pausedNode.name}%`]);
      assert.ok(lost.rows[0]!.n >= 1, 'the resumed node reported its lost lease (6551)');
    } finally {
      await admin.end();
    }
    const f = await fence();
    console.log(`# cloud fence: highest token ${f.highest}, ${f.refused} write(s) refused for an older token`);
    const finalLeader = await ha(await leader());
    assert.equal(finalLeader?.token, f.highest, 'the cloud fence stands at the current leader token');
    // Each node's /status names its role, the leader and both nodes.
    const views = await Promise.all([...nodes.values()].map((n) => ha(n)));
    assert.deepEqual(views.map((v) => v?.role).sort(), ['leader', 'standby']);
    for (const v of views) {
      assert.equal(v?.leader?.node, finalLeader?.leader?.node);
      // Live nodes say so every second (on a loaded machine a few seconds late: the bound is loose);
      // a killed process's row falls silent, and one node name may have rows of several processes.
      assert.deepEqual([...new Set(v?.nodes.filter((n) => n.silentSeconds <= 10).map((n) => n.node))].sort(), ['node-a', 'node-b']);
    }
    passed = true;
  });
});
