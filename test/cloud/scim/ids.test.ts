/** Resource ids: UUID version 7, increasing within one process (src/cloud/scim/ids.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newResourceId } from '../../../src/cloud/scim/ids.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('ids are UUIDv7 carrying the millisecond, and strictly increasing even when the clock stands still or goes back', () => {
  const t = Date.UTC(2026, 11, 6, 10, 0, 0);
  const ids: string[] = [];
  // 10,000 ids in one millisecond (more than the 12-bit counter holds), then a clock that went back.
  for (let i = 0; i < 10_000; i++) ids.push(newResourceId(t));
  for (let i = 0; i < 100; i++) ids.push(newResourceId(t - 5_000));
  for (let i = 0; i < 100; i++) ids.push(newResourceId(t + 60_000));
  for (const id of ids) assert.match(id, V7);
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `id ${i} (${ids[i]}) is not above id ${i - 1} (${ids[i - 1]})`);
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(parseInt(ids[0]!.replace(/-/g, '').slice(0, 12), 16), t);
  assert.equal(parseInt(ids.at(-1)!.replace(/-/g, '').slice(0, 12), 16), t + 60_000);
});

test('the random part differs between ids of one millisecond', () => {
  const t = Date.UTC(2027, 0, 1);
  const tails = new Set(Array.from({ length: 1000 }, () => newResourceId(t).slice(19)));
  assert.equal(tails.size, 1000);
});
