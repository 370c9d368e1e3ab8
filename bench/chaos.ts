/**
 * `npm run chaos [-- --trials N --seed S --kinds sync,serve,cloud --users N]`: SIGKILL trials of
 * `idsync sync`, `idsync serve` (password changes in flight) and `idsync cloud serve` (mid-export),
 * each followed by recovery and a full verification through SCIM and sign-in against the source of
 * truth (bench/chaos-trials.ts describes a trial). Prints the seed first, so a failing round can be
 * replayed with --seed; exits 1 when any trial lost, duplicated or got anything wrong.
 *
 * Needs slapd (apt-get install slapd ldap-utils) and a build (npm run chaos builds first). Run it in
 * its own network namespace on a shared machine:
 *   unshare -n sh -c 'ip link set lo up && npm run chaos -- --trials 100'
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { KINDS, runChaos, type Kind } from './chaos-trials.js';

const USAGE = `usage: npm run chaos -- [--trials N (20)] [--seed S (random)] [--kinds ${KINDS.join(',')}] [--users N (40)]`;

function usage(message: string): never {
  console.error(`chaos: ${message}\n${USAGE}`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '20' },
    seed: { type: 'string' },
    kinds: { type: 'string', default: KINDS.join(',') },
    users: { type: 'string', default: '40' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (values.help) {
  console.log(`SIGKILL trials of idsync sync, serve and cloud serve, each verified through SCIM and sign-in.\n${USAGE}`);
  process.exit(0);
}
const trials = Number(values.trials);
if (!Number.isInteger(trials) || trials < 1) usage(`--trials must be a positive integer, not ${values.trials}`);
const seed = values.seed === undefined ? randomInt(2 ** 31) : Number(values.seed);
if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) usage(`--seed must be an integer 0..2^32-1, not ${values.seed}`);
const users = Number(values.users);
if (!Number.isInteger(users) || users < 10) usage(`--users must be an integer >= 10, not ${values.users}`);
const kinds = values.kinds.split(',').map((k) => k.trim()) as Kind[];
for (const k of kinds) if (!KINDS.includes(k)) usage(`unknown kind "${k}" (kinds: ${KINDS.join(', ')})`);

console.log(`chaos: seed ${seed}, ${trials} trials, kinds ${kinds.join(',')}, ${users} users (replay: npm run chaos -- --seed ${seed} --trials ${trials} --kinds ${kinds.join(',')} --users ${users})`);
const report = await runChaos({ trials, seed, kinds, users, log: (line) => console.log(line) });
const per = kinds.map((k) => `${k} ${report.trials.filter((t) => t.kind === k).length}`).join(', ');
const killedRunning = report.trials.filter((t) => t.killedRunning).length;
const pcns = report.trials.reduce((a, t) => ({ accepted: a.accepted + t.pcns.accepted, lost: a.lost + t.pcns.lost }), { accepted: 0, lost: 0 });
console.log(
  `\nchaos: seed ${seed}: ${report.trials.length} trials (${per}; ${killedRunning} killed while running), ` +
    `${pcns.accepted} PCNs accepted and ${pcns.lost} cut off by a kill; ` +
    `${report.lost} lost, ${report.duplicated} duplicated, ${report.failedTrials} failed trials; ` +
    `${(report.durationMs / 1000).toFixed(0)} s; load ${report.load.start.toFixed(2)} → ${report.load.end.toFixed(2)} on ${report.load.cpus} CPUs`,
);
process.exitCode = report.failedTrials === 0 ? 0 : 1;
