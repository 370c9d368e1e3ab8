/** Evaluation speed, logged (not asserted): compiled programs are cached, evaluation is cheap. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inboundFlow } from '../../src/engine/flows.js';
import { adUser, rules } from './fixtures.js';

test('evaluations per second (logged)', (t) => {
  const r = rules({
    scope: [{ connector: 'corp-ad', objectType: 'user', where: 'first(attributes, "department") != "Contractors"' }],
    inbound: [
      { target: 'displayName', expression: 'coalesce(first(attributes, "displayname"), first(attributes, "givenname") + " " + first(attributes, "sn"))' },
      { target: 'mail', expression: 'lower(mv.mail)' },
    ],
    outbound: [{ objectType: 'user', target: 'title', expression: 'mv.title == null ? null : upper(mv.title)' }],
  });
  const N = 100_000;
  const measure = (label: string, evalsPerCall: number, fn: () => void) => {
    for (let i = 0; i < 2000; i++) fn();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    t.diagnostic(`${label}: ${Math.round(N / s).toLocaleString('en')} objects/s, ${Math.round((N * evalsPerCall) / s).toLocaleString('en')} evaluations/s`);
  };
  measure('inScope (1 condition)', 1, () => r.inScope('corp-ad', adUser, () => false));
  measure('inboundFlow alone (baseline)', 0, () => inboundFlow('ad', adUser));
  measure('inbound (defaults + 2 rules)', 2, () => r.inbound('corp-ad', 'ad', adUser));
  const mv = inboundFlow('ad', adUser);
  const res = { userName: 'ann', title: 'x', name: { givenName: 'Ann' } };
  measure('outbound (1 rule, clone included)', 1, () => r.outbound('user', mv, res));
  assert.equal(r.inbound('corp-ad', 'ad', adUser).mail, 'ann.lee@example.com');
});
