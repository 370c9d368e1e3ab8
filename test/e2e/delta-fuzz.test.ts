/**
 * The differential, randomised delta test in CI (issue 10): short rounds against the real Samba
 * AD DC and a real slapd with the accesslog. After every delta cycle, the cloud must equal what a
 * full sync of the same directory gives in a second, fresh engine and cloud (test/helpers/delta-fuzz.ts).
 * Long rounds: `npm run fuzz:delta -- --steps 2000` (bench/README.md records one).
 *
 * Fixed seeds are regression cases: on the code before issue 10, seed 2 differs after 7 cycles on
 * AD (an OU renamed: its users kept their old DNs) and after 10 on OpenLDAP (an OU moved out of the
 * scope: its user stayed in the cloud).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runDeltaFuzz, type FuzzResult } from '../helpers/delta-fuzz.js';
import { skipUnless } from '../helpers/integration.js';
import { useSambaDC, type SambaDC } from '../helpers/samba.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

const report = (r: FuzzResult) => `seed ${r.seed} (${r.kind}) differs after ${r.steps} steps:\n${r.ops.slice(-30).join('\n')}\n${r.differences.join('\n')}`;

/** Seeds and steps per round: about a minute per directory kind on a busy 2-core machine. */
const AD_ROUNDS = [
  { seed: 2, steps: 120 },
  { seed: 7, steps: 60 },
];
const LDAP_ROUNDS = [
  { seed: 2, steps: 200 },
  { seed: 7, steps: 120 },
];

describe('differential delta test: Samba AD', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  before(async () => {
    dc = await useSambaDC();
  });
  after(async () => {
    await dc?.stop();
  });
  for (const { seed, steps } of AD_ROUNDS) {
    test(`seed ${seed}, ${steps} steps: every delta cycle equals a full sync`, { timeout: 300_000 }, async () => {
      const r = await runDeltaFuzz({ kind: 'ad', seed, steps, dc });
      assert.equal(r.steps, steps);
      assert.deepEqual(r.differences, [], report(r));
    });
  }
});

describe('differential delta test: OpenLDAP with the accesslog', { skip: skipUnless('slapd') }, () => {
  let slapd: Slapd;
  before(async () => {
    slapd = await startSlapd({ accesslog: true, baseOus: false });
  });
  after(async () => {
    await slapd?.stop();
  });
  for (const { seed, steps } of LDAP_ROUNDS) {
    test(`seed ${seed}, ${steps} steps: every delta cycle equals a full sync`, { timeout: 300_000 }, async () => {
      const r = await runDeltaFuzz({ kind: 'ldap', seed, steps, slapd });
      assert.equal(r.steps, steps);
      assert.deepEqual(r.differences, [], report(r));
    });
  }
});
