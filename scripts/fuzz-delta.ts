/**
 * Long rounds of the differential, randomised delta test (test/helpers/delta-fuzz.ts):
 *
 *   unshare -n sh -c 'ip link set lo up && npm run fuzz:delta -- --steps 2000 [--seed S] [--kind ad|ldap] [--every 4]'
 *
 * Starts a Samba AD DC (for `ad`; Samba's ports are fixed, hence the network namespace) and a
 * slapd with the accesslog (for `ldap`). Prints one line per kind; on a difference, the
 * operations and the differences, and exits 1: keep the seed as a fixed case in
 * test/e2e/delta-fuzz.test.ts once it is fixed.
 */
import { runDeltaFuzz, type FuzzKind, type FuzzResult } from '../test/helpers/delta-fuzz.js';
import { useSambaDC } from '../test/helpers/samba.js';
import { startSlapd } from '../test/helpers/slapd.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const steps = Number(arg('steps') ?? 200);
  const seed = Number(arg('seed') ?? Math.floor(Math.random() * 1e9));
  const every = Number(arg('every') ?? 4);
  const kinds = (arg('kind') ? [arg('kind')] : ['ad', 'ldap']) as FuzzKind[];
  if (!Number.isInteger(steps) || steps < 1 || !Number.isInteger(seed) || kinds.some((k) => k !== 'ad' && k !== 'ldap')) {
    console.error('usage: fuzz-delta [--steps N] [--seed S] [--kind ad|ldap] [--every K]');
    return 2;
  }
  let failed = false;
  for (const kind of kinds) {
    const t0 = Date.now();
    const dc = kind === 'ad' ? await useSambaDC() : undefined;
    const slapd = kind === 'ldap' ? await startSlapd({ accesslog: true, baseOus: false }) : undefined;
    let r: FuzzResult;
    try {
      r = await runDeltaFuzz({ kind, seed, steps, cycleEvery: every, dc, slapd, log: (l) => console.error(l) });
    } finally {
      await slapd?.stop();
      await dc?.stop();
    }
    const secs = ((Date.now() - t0) / 1000).toFixed(0);
    console.log(`${kind}: seed ${seed}, ${r.steps} steps, ${r.cycles} delta cycles, ${r.refused} operations refused by the directory, ${r.differences.length} differences, ${secs} s`);
    console.log(`  operations: ${Object.entries(r.counts).sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
    if (r.differences.length) {
      failed = true;
      console.log(r.ops.join('\n'));
      console.log(r.differences.join('\n'));
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
