import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSince } from '../../src/events/since.js';

const now = new Date('2026-05-10T12:00:00.000Z');

test('durations count back from now', () => {
  assert.equal(parseSince('30s', now)?.toISOString(), '2026-05-10T11:59:30.000Z');
  assert.equal(parseSince('30m', now)?.toISOString(), '2026-05-10T11:30:00.000Z');
  assert.equal(parseSince('2h', now)?.toISOString(), '2026-05-10T10:00:00.000Z');
  assert.equal(parseSince('7d', now)?.toISOString(), '2026-05-03T12:00:00.000Z');
  assert.equal(parseSince('1w', now)?.toISOString(), '2026-05-03T12:00:00.000Z');
  assert.equal(parseSince(' 2H ', now)?.toISOString(), '2026-05-10T10:00:00.000Z');
});

test('ISO 8601 times', () => {
  assert.equal(parseSince('2026-05-01T08:00:00Z', now)?.toISOString(), '2026-05-01T08:00:00.000Z');
  assert.equal(parseSince('2026-05-01T08:00:00.250Z', now)?.toISOString(), '2026-05-01T08:00:00.250Z');
  assert.equal(parseSince('2026-05-01T10:00:00+02:00', now)?.toISOString(), '2026-05-01T08:00:00.000Z');
  // no zone: local time
  assert.equal(parseSince('2026-05-01T08:00', now)?.getTime(), new Date(2026, 4, 1, 8, 0).getTime());
  assert.equal(parseSince('2026-05-01 08:00:00', now)?.getTime(), new Date(2026, 4, 1, 8, 0).getTime());
  assert.equal(parseSince('2026-05-01', now)?.getTime(), new Date(2026, 4, 1).getTime());
});

test('anything else is refused', () => {
  for (const bad of ['', '2x', 'h', '-2h', '2 hours', 'yesterday', '1', 'May 1', '2026-02-31', '2026-13-01', '2026-05-01T25:00', '10m ago', '1.5h']) {
    assert.equal(parseSince(bad, now), undefined, bad);
  }
});
