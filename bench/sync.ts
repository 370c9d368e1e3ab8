/**
 * `npm run bench:sync [-- 100000,1000000]`: generates N users (and N/100 groups of 100 members)
 * into a real OpenLDAP with slapadd, then measures, with the cloud directory in its own process:
 *   1. the initial full cycle (import → sync → export of everything),
 *   2. a no-change delta cycle,
 *   3. a 1 % change delta cycle (titles of N/100 users changed over LDAP),
 * and prints wall time, objects/s and the peak RSS of the sync process. Asserts nothing.
 * Goals on 2 cores: 100k initial ≤ 15 s; 1M ≤ 3 min at ≤ 1 GB RSS; no-change delta at 1M ≤ 1 s;
 * 1 % delta at 1M ≤ 10 s. The incumbent: ~10 minutes per 10,000 objects.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { stringify } from 'yaml';
import { createSyncClient } from '../src/cloud/admin-api-client.js';
import { loadConfig } from '../src/config/load.js';
import { openContext } from '../src/engine/context.js';
import { startSlapd } from '../test/helpers/slapd.js';

const sizes = (process.argv[2] ?? '100000').split(',').map(Number);
const root = path.resolve(import.meta.dirname, '..');

interface WorkerResult {
  status: string;
  error: unknown;
  seconds: number;
  peakRssMb: number;
  steps: Record<string, { profile: string | null; seconds: number | null; adds: number; updates: number; deletes: number; unchanged: number; errors: number }>;
}

function node(args: string[], env: NodeJS.ProcessEnv = {}): { done: Promise<string>; child: ReturnType<typeof spawn> } {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  const done = new Promise<string>((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}: ${err}`)))),
  );
  return { done, child };
}

async function writeLdif(file: string, n: number): Promise<void> {
  const out = createWriteStream(file);
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  for (let i = 0; i < n; i++) {
    await write(
      `dn: uid=u${i},ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nuid: u${i}\ncn: User ${i}\nsn: U${i}\ngivenName: User\nmail: u${i}@bench.test\ntitle: Engineer\ndepartmentNumber: D${i % 50}\nemployeeNumber: ${i}\n\n`,
    );
  }
  for (let g = 0; g < Math.floor(n / 100); g++) {
    let members = '';
    for (let i = g * 100; i < g * 100 + 100; i++) members += `member: uid=u${i},ou=people,dc=lab,dc=test\n`;
    await write(`dn: cn=g${g},ou=groups,dc=lab,dc=test\nobjectClass: groupOfNames\ncn: g${g}\n${members}\n`);
  }
  out.end();
  await once(out, 'finish');
}

function report(label: string, objects: number, r: WorkerResult): void {
  const exp = r.steps['cloud/export'];
  const imp = Object.entries(r.steps).find(([k]) => k.endsWith('/import'))?.[1];
  console.log(
    `${label.padEnd(22)} ${r.seconds.toFixed(2).padStart(7)} s  ${Math.round(objects / r.seconds).toLocaleString('en-US').padStart(9)} objects/s  ` +
      `peak RSS ${Math.round(r.peakRssMb).toString().padStart(5)} MB  import ${imp?.profile ?? '?'}  exported +${exp?.adds ?? 0} ~${exp?.updates ?? 0} -${exp?.deletes ?? 0}  ${r.status}`,
  );
  console.log(`${''.padEnd(22)} ${Object.entries(r.steps).map(([k, s]) => `${k} ${s.seconds?.toFixed(2)} s`).join(', ')}`);
}

for (const n of sizes) {
  const groups = Math.floor(n / 100);
  const dir = mkdtempSync(path.join(tmpdir(), `idsync-bench-sync-${n}-`));
  console.log(`\nN = ${n.toLocaleString('en-US')} users + ${groups.toLocaleString('en-US')} groups (${dir})`);
  let t = performance.now();
  await writeLdif(path.join(dir, 'seed.ldif'), n);
  const slapd = await startSlapd({ seedLdifFile: path.join(dir, 'seed.ldif') });
  console.log(`generated and slapadd-loaded in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const adminPassword = 'Bench-admin-password-1';
  const cloud = node(['bin/idsync.js', 'cloud', 'serve', '--data', path.join(dir, 'cloud'), '--port', '0'], { IDSYNC_CLOUD_ADMIN_PASSWORD: adminPassword });
  const url = await new Promise<string>((resolve) => {
    let buf = '';
    cloud.child.stdout!.on('data', (d: string) => {
      buf += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
  });
  try {
    const secret = await createSyncClient(url, { username: 'admin', password: adminPassword }, 'bench');
    const config = path.join(dir, 'idsync.yaml');
    writeFileSync(
      config,
      stringify({
        dataDir: './data',
        connectors: [{ name: 'bench', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn }],
        cloud: { url, auth: { type: 'client_credentials', clientId: 'bench' } },
        sync: { deletionThreshold: n },
      }),
    );
    const ctx = openContext(loadConfig(config));
    ctx.credentials.set('cloud', secret);
    ctx.credentials.set('bench', slapd.adminPassword);
    ctx.close();

    // IDSYNC_BENCH_PROFILE=DIR writes a CPU profile of each cycle there (open it in Chrome DevTools).
    const prof = process.env.IDSYNC_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.IDSYNC_BENCH_PROFILE}`] : [];
    const cycle = async () => JSON.parse((await node([...prof, '--import', 'tsx', 'bench/sync-worker.ts', config]).done).trim().split('\n').pop()!) as WorkerResult;
    report('initial full cycle', n + groups, await cycle());
    report('no-change delta', n + groups, await cycle());

    t = performance.now();
    const changed = Math.max(1, Math.floor(n / 100));
    let ldif = '';
    for (let i = 0; i < changed; i++) ldif += `dn: uid=u${i * 100},ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: title\ntitle: Changed\n\n`;
    await slapd.modify(ldif);
    console.log(`changed ${changed.toLocaleString('en-US')} users over LDAP in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    report('1 % change delta', n + groups, await cycle());
  } finally {
    cloud.child.kill('SIGTERM');
    await slapd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
