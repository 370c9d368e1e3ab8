/**
 * `node --import tsx bench/sync-ab.ts [N] [ROUNDS] [TREE,TREE...]`: the initial full cycle of N
 * users (+ N/100 groups) run by each source tree's `bench/sync-worker.ts` in turn, ROUNDS times,
 * against one OpenLDAP and a fresh cloud each time (the cloud of this tree's dist/). Prints the CPU
 * of the sync process (the figure that survives a busy machine), its peak RSS and the cloud's CPU:
 * two versions of the engine compared side by side in the same minutes. No floors, no deltas
 * (npm run bench:sync has those). `AB_FLAGS='--max-semi-space-size=64'` passes node flags to the
 * worker, `AB_PROFILE=DIR` writes a CPU profile of each run. Trees default to this one.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { stringify } from 'yaml';
import { createSyncClient } from '../src/cloud/admin-api-client.js';
import { loadConfig } from '../src/config/load.js';
import { openContext } from '../src/engine/context.js';
import { startSlapd } from '../test/helpers/slapd.js';
import { benchUser } from '../bench/floors.js';

const n = Number(process.argv[2] ?? 100000);
const rounds = Number(process.argv[3] ?? 2);
const trees = (process.argv[4] ?? '.').split(',').map((t) => path.resolve(t));
const root = path.resolve(import.meta.dirname, '..');
function node(args: string[], cwd = root, env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = ''; let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  const done = new Promise<string>((res, rej) => child.on('exit', (c) => (c === 0 ? res(out) : rej(new Error(`exit ${c}: ${err}`)))));
  return { done, child };
}
const dir = mkdtempSync(path.join(tmpdir(), 'idsync-ab-'));
const out = createWriteStream(path.join(dir, 'seed.ldif'));
for (let i = 0; i < n; i++) { let e = `dn: uid=u${i},ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\n`; for (const [k, v] of Object.entries(benchUser(i))) e += `${k}: ${v}\n`; if (!out.write(e + '\n')) await once(out, 'drain'); }
for (let g = 0; g < n / 100; g++) { let m = ''; for (let i = g * 100; i < g * 100 + 100; i++) m += `member: uid=u${i},ou=people,dc=lab,dc=test\n`; out.write(`dn: cn=g${g},ou=groups,dc=lab,dc=test\nobjectClass: groupOfNames\ncn: g${g}\n${m}\n`); }
out.end(); await once(out, 'finish');
const slapd = await startSlapd({ seedLdifFile: path.join(dir, 'seed.ldif') });
const pw = 'Bench-admin-password-1';
const cpuOf = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
let k = 0;
try {
  for (let r = 0; r < rounds; r++) for (const tree of trees) {
    k++;
    const cloud = node(['bin/idsync.js', 'cloud', 'serve', '--data', path.join(dir, `cloud${k}`), '--port', '0'], root, { IDSYNC_CLOUD_ADMIN_PASSWORD: pw });
    const url = await new Promise<string>((res) => { let b = ''; cloud.child.stdout!.on('data', (d: string) => { b += d; const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(b); if (m) res(m[1]!); }); });
    const secret = await createSyncClient(url, { username: 'admin', password: pw }, 'bench');
    const config = path.join(dir, `c${k}.yaml`);
    writeFileSync(config, stringify({ dataDir: `./data${k}`, connectors: [{ name: 'bench', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn }], cloud: { url, auth: { type: 'client_credentials', clientId: 'bench' } }, sync: { deletionThreshold: n } }));
    const ctx = openContext(loadConfig(config)); ctx.credentials.set('cloud', secret); ctx.credentials.set('bench', slapd.adminPassword); ctx.close();
    const c0 = cpuOf(cloud.child.pid!);
    const prof = process.env.AB_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.AB_PROFILE}/${k}`] : [];
    const res = JSON.parse((await node([...prof, ...(process.env.AB_FLAGS ? process.env.AB_FLAGS.split(' ') : []), '--import', 'tsx', 'bench/sync-worker.ts', config], tree).done).trim().split('\n').pop()!);
    console.log(`${path.basename(tree).padEnd(12)} ${res.seconds.toFixed(2)} s  CPU sync ${res.cpuSeconds.toFixed(2)} s  cloud ${(cpuOf(cloud.child.pid!) - c0).toFixed(1)} s  RSS ${Math.round(res.peakRssMb)} MB  ${res.status} +${res.steps['cloud/export'].adds}  load ${loadavg()[0]!.toFixed(1)}`);
    cloud.child.kill('SIGTERM');
  }
} finally { await slapd.stop(); rmSync(dir, { recursive: true, force: true }); }
