/**
 * The notification path's coalescing writer (src/passwords/intake.ts) through the real pipeline on
 * a real idsync.db: changes arriving together share a transaction, each user's last change wins,
 * and a change acknowledged to its sender survives a SIGKILL in the middle of a window.
 */
import { strict as assert } from 'node:assert';
import { createHook } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { EventLog } from '../../src/events/log.js';
import { hashPoolThreads, ntHash, orgIdHash, verifyOrgIdHash } from '../../src/passwords/hash.js';
import { IntakeWriter } from '../../src/passwords/intake.js';
import type { OutboxWrite } from '../../src/passwords/outbox.js';
import { PasswordKeys } from '../../src/passwords/keys.js';
import { Outbox } from '../../src/passwords/outbox.js';
import { INTAKE_BATCH, PasswordPipeline } from '../../src/passwords/pipeline.js';
import { prng } from '../helpers/prng.js';
import { addUser, makeEnv, type Env, type TestUser } from './sources/fixtures.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const offline = (): never => {
  throw new Error('offline: these tests never deliver');
};

/** The OrgId hash waiting in the outbox for an anchor (opened with the data key). */
function queuedHash(env: Env, anchor: string): string | undefined {
  return new Outbox(env.db, new PasswordKeys(env.key)).due(100_000, new Set()).find((i) => i.anchor === anchor)?.hash;
}

describe('password intake: coalescing', () => {
  let env: Env;
  before(() => {
    env = makeEnv();
  });
  after(() => env.cleanup());

  it('of two changes of one user in one window, the later wins even when its hash is ready first', async () => {
    const u = addUser(env.db, { sam: 'order-one', anchor: 'anchor-order-one' });
    // One clock tick for both: the arrival order alone decides (as for two changes in one ms).
    const at = Date.parse('2026-01-06T08:00:00Z');
    const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key, options: { now: () => at } });
    const later = await orgIdHash('Second-Passw0rd!');
    // The first needs a PBKDF2 on the pool; the second is an OrgId hash already (the DC agent's).
    const first = p.acceptNtHash(u.connector, u.anchor, await ntHash('First-Passw0rd!'), undefined, 'pcn');
    const second = p.acceptOrgIdHash(u.connector, u.anchor, later, undefined, 'samba-agent');
    await Promise.all([first, second]);
    assert.equal(queuedHash(env, u.anchor), later, 'the change that arrived last is the one queued');
  });

  it('changes that arrive together share one transaction, and each is answered after it', async () => {
    const users = Array.from({ length: 50 }, (_, i) => addUser(env.db, { sam: `burst-${i}`, anchor: `anchor-burst-${i}` }));
    const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key });
    const hash = await orgIdHash('Burst-Passw0rd!');
    const before = p.intakeStats();
    await Promise.all(users.map((u) => p.acceptOrgIdHash(u.connector, u.anchor, hash)));
    const s = p.intakeStats();
    assert.equal(s.transactions - before.transactions, 1, '50 changes of one burst, one transaction');
    assert.equal(s.changes - before.changes, 50);
    for (const u of users) assert.equal(queuedHash(env, u.anchor), hash);
  });

  it('on seeded random interleavings, every user ends with the change sent last', async () => {
    for (const seed of [1, 2, 3]) {
      const rnd = prng(seed);
      const users: TestUser[] = Array.from({ length: 12 }, (_, i) => addUser(env.db, { sam: `mix-${seed}-${i}`, anchor: `anchor-mix-${seed}-${i}` }));
      const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key });
      const lastPassword = new Map<string, string>();
      const calls: Promise<unknown>[] = [];
      for (let k = 0; k < 120; k++) {
        const u = users[Math.floor(rnd() * users.length)]!;
        const pw = `Seed${seed}-Change${k}-Passw0rd!`;
        lastPassword.set(u.anchor, pw);
        // The three ways a single change arrives (what the sender hashed is ready before it sends);
        // the pipeline's answers are not awaited, so the changes share windows.
        const how = Math.floor(rnd() * 3);
        if (how === 0) calls.push(p.acceptPassword(u.sam, pw));
        else if (how === 1) {
          const nt = await ntHash(pw);
          calls.push(p.acceptNtHash(u.connector, u.anchor, nt));
        } else {
          const h = await orgIdHash(pw);
          calls.push(p.acceptOrgIdHash(u.connector, u.anchor, h));
        }
        if (rnd() < 0.2) await new Promise((r) => setTimeout(r, Math.floor(rnd() * 3)));
      }
      await Promise.all(calls);
      for (const u of users) {
        const pw = lastPassword.get(u.anchor);
        if (pw === undefined) continue;
        const hash = queuedHash(env, u.anchor);
        assert.ok(hash && (await verifyOrgIdHash(pw, hash)), `seed ${seed}: ${u.sam} holds the hash of its last change`);
      }
      const s = p.intakeStats();
      assert.equal(s.pending, 0);
      assert.ok(s.changes >= 80, `seed ${seed}: the single changes went through the coalescing writer (${s.changes})`);
      assert.ok(s.transactions < s.changes, `seed ${seed}: ${s.changes} changes in ${s.transactions} transactions`);
    }
  });

  it('a window closes once no hash waits for a pool thread, not only when the pool has run dry', async () => {
    // The writer alone, with its write recorded: which changes each transaction holds.
    const written: number[] = [];
    const w = new IntakeWriter((changes) => {
      written.push(changes.length);
      return changes.map(() => 'queued');
    }, { windowMs: 60_000 });
    const pool = hashPoolThreads();
    const change = (i: number): OutboxWrite => ({ connector: 'corp', anchor: `pool-${i}`, hash: 'h', changedAt: new Date(), source: 'pcn' });
    // Twice the pool's threads in flight (the import path's and the bench's default): the first
    // group ends while the second is still being computed.
    for (let i = 0; i < 2 * pool; i++) w.hashStarted();
    const answers: Promise<unknown>[] = [];
    for (let i = 0; i < pool; i++) {
      w.hashEnded();
      answers.push(w.submit(change(i)));
    }
    // The flush runs on the next turn of the event loop (not on the 60 s window).
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    // Before: held until fewer hashes than cores were left, i.e. until the second group had ended
    // as well, with the pool idle meanwhile.
    assert.deepEqual(written, [pool], 'the first group is written while the second is computed');
    await Promise.all(answers);
    for (let i = 0; i < pool; i++) w.hashEnded();
    w.flush();
  });

  it('an acknowledged change is already on disk: another connection sees it at once', async () => {
    const u = addUser(env.db, { sam: 'acked', anchor: 'anchor-acked' });
    const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key, options: { intake: { windowMs: 60_000, busyHashes: 1 } } });
    await p.acceptPassword('acked', 'Acked-Passw0rd!');
    env.reopen(); // a new connection to the file, without any shutdown of the old one
    const hash = queuedHash(env, u.anchor);
    assert.ok(hash && (await verifyOrgIdHash('Acked-Passw0rd!', hash)));
  });
});

describe('password intake: SIGKILL in the middle of a window', () => {
  it('loses nothing acknowledged (real process, real SQLite)', async () => {
    const env = makeEnv();
    try {
      const users = 300;
      const code = `
        import { writeSync } from 'node:fs';
        import { openDatabase } from ${JSON.stringify(path.join(ROOT, 'src/store/database.ts'))};
        import { EventLog } from ${JSON.stringify(path.join(ROOT, 'src/events/log.ts'))};
        import { PasswordPipeline } from ${JSON.stringify(path.join(ROOT, 'src/passwords/pipeline.ts'))};
        import { MIGRATIONS, addUser } from ${JSON.stringify(path.join(ROOT, 'test/passwords/sources/fixtures.ts'))};
        const db = openDatabase(process.env.DB, MIGRATIONS);
        db.transaction(() => { for (let i = 0; i < ${users}; i++) addUser(db, { sam: 'k' + i, anchor: 'anchor-k' + i }); })();
        // Windows that close on size (20) or when no hash is left in flight: with 40 callers the
        // process is almost always holding an open window.
        const p = new PasswordPipeline({ db, cloud: () => { throw new Error('offline'); }, events: new EventLog(db), key: Buffer.from(process.env.KEY, 'base64'),
          options: { intake: { windowMs: 60000, maxBatch: 20, busyHashes: 1 } } });
        let next = 0, acked = 0;
        const caller = async () => {
          while (next < ${users}) {
            const i = next++;
            await p.acceptPassword('k' + i, 'Killed-' + i + '-Passw0rd!');
            writeSync(1, 'ACK ' + i + '\\n'); // the answer a sender would get
            acked++;
          }
        };
        // Once enough changes were answered, SIGKILL while a window holds changes not yet written.
        setInterval(() => {
          if (acked < 60 || p.intakeStats().pending === 0) return;
          writeSync(1, 'KILL pending=' + p.intakeStats().pending + '\\n');
          process.kill(process.pid, 'SIGKILL');
        }, 0);
        await Promise.all(Array.from({ length: 40 }, caller));
        writeSync(1, 'DONE\\n');
        process.exit(0);
      `;
      env.db.close();
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        cwd: ROOT,
        env: { ...process.env, DB: env.dbFile, KEY: env.key.toString('base64') },
        encoding: 'utf8',
        timeout: 300_000,
      });
      assert.equal(r.signal, 'SIGKILL', `the child was killed: ${r.stdout.slice(-500)} ${r.stderr.slice(-2000)}`);
      const kill = /KILL pending=(\d+)/.exec(r.stdout);
      assert.ok(kill && Number(kill[1]) > 0, 'killed while changes were waiting in an open window');
      const acked = [...r.stdout.matchAll(/^ACK (\d+)$/gm)].map((m) => Number(m[1]));
      assert.ok(acked.length >= 60);
      env.reopen();
      const outbox = new Map(new Outbox(env.db, new PasswordKeys(env.key)).due(100_000, new Set()).map((i) => [i.anchor, i.hash]));
      for (const i of acked) {
        const hash = outbox.get(`anchor-k${i}`);
        assert.ok(hash && (await verifyOrgIdHash(`Killed-${i}-Passw0rd!`, hash)), `acknowledged change ${i} survived the SIGKILL`);
      }
      // The database is consistent: every waiting change holds its hash and the time of its change.
      const orphans = env.db.prepare('SELECT count(*) FROM phs_users WHERE next_attempt_at IS NOT NULL AND (hash_ct IS NULL OR changed_at IS NULL OR queued_at IS NULL)').pluck().get();
      assert.equal(orphans, 0);
      assert.equal(env.db.prepare('PRAGMA integrity_check').pluck().get(), 'ok');
    } finally {
      env.cleanup();
    }
  });
});

describe('password intake: the import path (observeNtHashes)', () => {
  it('a user listed twice in one page counts once, and the later entry is the one queued', async () => {
    const env = makeEnv();
    try {
      const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key });
      // 300 users, then the first 40 again with another password: far more than the hashes in flight.
      const page = await Promise.all(Array.from({ length: 300 }, async (_, i) => ({ anchor: `page-dup-${i}`, nt: await ntHash(`First-${i}-Passw0rd!`) })));
      const again = await Promise.all(Array.from({ length: 40 }, async (_, i) => ({ anchor: `page-dup-${i}`, nt: await ntHash(`Later-${i}-Passw0rd!`) })));
      assert.equal(await p.observeNtHashes('ldap', [...page, ...again]), 300, 'each user counts once');
      for (let i = 0; i < 300; i++) {
        const hash = queuedHash(env, `page-dup-${i}`);
        assert.ok(hash && (await verifyOrgIdHash(i < 40 ? `Later-${i}-Passw0rd!` : `First-${i}-Passw0rd!`, hash)), `user ${i}: the later entry is queued`);
      }
      // The fingerprints remembered are the later entries': the same page again changes nothing.
      assert.equal(await p.observeNtHashes('ldap', [...page.slice(40), ...again]), 0);
    } finally {
      env.cleanup();
    }
  });

  it('keeps the pool fed while it writes: dozens of hashes are in flight during each full transaction', async () => {
    // A transaction of INTAKE_BATCH rows holds the main thread for milliseconds; with only twice the
    // pool's threads in flight (8, as before) the pool ran dry meanwhile. Counted from the
    // PBKDF2 requests themselves (async_hooks: dispatched, callback not yet run) at each write.
    const env = makeEnv();
    let inFlight = 0;
    const requests = new Set<number>();
    const hook = createHook({
      init(id, type) {
        if (type !== 'PBKDF2REQUEST') return;
        inFlight++;
        requests.add(id);
      },
      before(id) {
        if (requests.delete(id)) inFlight--;
      },
    });
    // A spy on the real write (it calls through): how many rows, and how many hashes were in flight.
    const writes: Array<{ rows: number; inFlight: number }> = [];
    const enqueueMany = Outbox.prototype.enqueueMany;
    try {
      const p = new PasswordPipeline({ db: env.db, cloud: offline, events: new EventLog(env.db), key: env.key });
      const nts = await Promise.all(Array.from({ length: 16 }, (_, i) => ntHash(`Fed-${i}-Passw0rd!`)));
      const page = Array.from({ length: 1200 }, (_, i) => ({ anchor: `fed-${i}`, nt: nts[i % nts.length]! }));
      Outbox.prototype.enqueueMany = function (this: Outbox, changes: readonly OutboxWrite[]) {
        writes.push({ rows: changes.length, inFlight });
        return enqueueMany.call(this, changes);
      };
      hook.enable();
      assert.equal(await p.observeNtHashes('ldap', page), 1200);
      hook.disable();
      const full = writes.filter((w) => w.rows === INTAKE_BATCH);
      assert.ok(full.length >= 3, `full transactions: ${JSON.stringify(writes)}`);
      for (const w of full) {
        assert.ok(w.inFlight >= 4 * hashPoolThreads(), `a transaction of ${w.rows} rows was written with only ${w.inFlight} hashes in flight`);
      }
      // Every user is queued with its own hash (the writes were not disturbed by the spy).
      for (const i of [0, 599, 1199]) assert.ok(await verifyOrgIdHash(`Fed-${i % 16}-Passw0rd!`, queuedHash(env, `fed-${i}`)!), `user ${i}`);
    } finally {
      hook.disable();
      Outbox.prototype.enqueueMany = enqueueMany;
      env.cleanup();
    }
  });
});
