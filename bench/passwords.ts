/**
 * `npm run bench:passwords`: OrgId hashes per second — raw crypto.pbkdf2 on all cores (the
 * ceiling), the transform alone, and the whole intake (transform + encrypted durable outbox).
 * Prints figures; asserts nothing. Usage: npm run bench:passwords [-- N]
 */
import { pbkdf2, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CloudClient } from '../src/connectors/cloud/client.js';
import { EventLog } from '../src/events/log.js';
import { ntHash, orgIdHashFromNt } from '../src/passwords/hash.js';
import { PasswordPipeline } from '../src/passwords/index.js';
import { openDatabase } from '../src/store/database.js';
import { allMigrations } from '../src/store/migrations.js';

const N = Number(process.argv[2] ?? 20_000);
const pbkdf2Async = promisify(pbkdf2);
// libuv's pool has 4 threads by default; PBKDF2 is CPU-bound, so one in flight per pool thread is enough.
const inFlight = Math.max(4, Number(process.env.UV_THREADPOOL_SIZE ?? 4)) * 2;

async function run(label: string, count: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) await fn(next++);
    }),
  );
  const rate = count / ((performance.now() - t0) / 1000);
  console.log(`${label.padEnd(46)} ${Math.round(rate).toLocaleString('en-US').padStart(8)} /s`);
  return rate;
}

const nts = await Promise.all(Array.from({ length: 256 }, (_, i) => ntHash(`Passw0rd-${i}`)));
const material = Buffer.from(nts[0]!.toString('hex').toUpperCase(), 'utf16le');
console.log(`${N.toLocaleString('en-US')} hashes, ${availableParallelism()} cores, ${inFlight} in flight, Node ${process.version}\n`);

const raw = await run('raw crypto.pbkdf2 (1000 iterations, 32 bytes)', N, () => pbkdf2Async(material, randomBytes(10), 1000, 32, 'sha256'));
const transform = await run('OrgId transform (orgIdHashFromNt)', N, (i) => orgIdHashFromNt(nts[i % nts.length]!));

const dir = mkdtempSync(path.join(tmpdir(), 'idsync-bench-pw-'));
const db = openDatabase(path.join(dir, 'idsync.db'), allMigrations);
const insert = db.prepare("INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash) VALUES ('ldap', ?, 'user', ?, ?, '{}', 'x')");
db.transaction(() => {
  for (let i = 0; i < N; i++) insert.run(`anchor-${i}`, `uid=u${i},dc=x`, `uid=u${i},dc=x`);
})();
const cloud = new CloudClient({ url: 'http://127.0.0.1:9', auth: { type: 'client_credentials', clientId: 'bench' }, timeoutMs: 1000, concurrency: 1, retries: 0 }, async () => undefined);
const pipeline = new PasswordPipeline({ db, cloud, events: new EventLog(db), key: randomBytes(32) });
const intake = await run('intake: transform + encrypted outbox (SQLite)', N, (i) => pipeline.acceptNtHash('ldap', `anchor-${i}`, nts[i % nts.length]!));
await cloud.close();
db.close();
rmSync(dir, { recursive: true, force: true });

console.log(`\ntransform / raw: ${((transform / raw) * 100).toFixed(0)}%   intake / raw: ${((intake / raw) * 100).toFixed(0)}%   (goal: ≥ 90%)`);
console.log('Change-to-sign-in latency on a Samba DC: see test/agent/samba.test.ts (not yet part of this benchmark).');
