/**
 * `node --import tsx bench/sync-ab.ts [N] [ROUNDS] [TREE,TREE...]`: the initial full cycle of N
 * users (+ N/100 groups) run by each source tree's `bench/sync-worker.ts` in turn, ROUNDS times,
 * against one OpenLDAP and a fresh cloud each time (the cloud of this tree's dist/). Prints the CPU
 * of the sync process (the figure that survives a busy machine), its peak RSS and the cloud's CPU:
 * two versions of the engine compared side by side in the same minutes. No floors, no deltas
 * (npm run bench:sync has those). `AB_FLAGS='--max-semi-space-size=64'` passes node flags to the
 * worker, `AB_PROFILE=DIR` writes a CPU profile of each run. Trees default to this one.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { createSyncClient } from '../src/cloud/admin-api-client.js';
import { startSlapd } from '../test/helpers/slapd.js';
import { writeBenchLdif } from './floors.js';
import { runNode, startBenchCloud, writeBenchConfig } from './processes.js';
import { NODE_FLAGS } from '../src/service/node-flags.js';

const n = Number(process.argv[2] ?? 100000);
const rounds = Number(process.argv[3] ?? 2);
const trees = (process.argv[4] ?? '.').split(',').map((t) => path.resolve(t));

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// The directory: N users and N/100 groups of 100 members, as bench/sync.ts writes them.
const dir = mkdtempSync(path.join(tmpdir(), 'idsync-ab-'));
await writeBenchLdif(path.join(dir, 'seed.ldif'), n);
const slapd = await startSlapd({ seedLdifFile: path.join(dir, 'seed.ldif') });
const adminPassword = 'Bench-admin-password-1';
let run = 0;
try {
  for (let r = 0; r < rounds; r++) {
    for (const tree of trees) {
      run++;
      const cloud = await startBenchCloud(path.join(dir, `cloud${run}`), adminPassword);
      const url = cloud.url;
      const secret = await createSyncClient(url, { username: 'admin', password: adminPassword }, 'bench');
      const config = path.join(dir, `idsync${run}.yaml`);
      writeBenchConfig(config, { dataDir: `./data${run}`, slapd, cloudUrl: url, cloudSecret: secret, n });
      const cloudCpu0 = cpuOf(cloud.child.pid!);
      const flags = [
        ...NODE_FLAGS, // as every idsync process (bin/idsync.js's first line); AB_FLAGS may add to them
        ...(process.env.AB_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(process.env.AB_PROFILE, String(run))}`] : []),
        ...(process.env.AB_FLAGS ? process.env.AB_FLAGS.split(' ') : []),
      ];
      const line = (await runNode([...flags, '--import', 'tsx', 'bench/sync-worker.ts', config], {}, tree).done).trim().split('\n').pop()!;
      const res = JSON.parse(line) as { seconds: number; cpuSeconds: number; peakRssMb: number; status: string; steps: Record<string, { adds: number }> };
      console.log(
        `${path.basename(tree).padEnd(12)} ${res.seconds.toFixed(2)} s  CPU sync ${res.cpuSeconds.toFixed(2)} s  cloud ${(cpuOf(cloud.child.pid!) - cloudCpu0).toFixed(1)} s  ` +
          `peak RSS ${Math.round(res.peakRssMb)} MB  ${res.status} +${res.steps['cloud/export']?.adds ?? 0}  load ${loadavg()[0]!.toFixed(1)}`,
      );
      cloud.child.kill('SIGTERM');
    }
  }
} finally {
  await slapd.stop();
  rmSync(dir, { recursive: true, force: true });
}
