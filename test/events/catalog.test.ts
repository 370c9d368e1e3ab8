import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ALL_EVENTS, EVENT_LEVELS, EVENT_SOURCES, EVENTS, eventById, eventByName } from '../../src/events/catalog.js';

test('ids and names are unique; names match their keys', () => {
  const ids = new Set<number>();
  const names = new Set<string>();
  for (const [key, def] of Object.entries(EVENTS)) {
    assert.equal(def.name, key);
    assert.match(def.name, /^[A-Z][A-Z0-9_]*$/);
    assert.ok(Number.isInteger(def.id) && def.id >= 0, `${def.name}: id`);
    assert.ok(!ids.has(def.id), `duplicate id ${def.id}`);
    assert.ok(!names.has(def.name), `duplicate name ${def.name}`);
    ids.add(def.id);
    names.add(def.name);
  }
  assert.equal(ALL_EVENTS.length, ids.size);
});

test('every event has a valid source and level, a plain message and a resolution', () => {
  for (const def of ALL_EVENTS) {
    assert.ok(EVENT_SOURCES.includes(def.source), `${def.name}: source ${def.source}`);
    assert.ok(EVENT_LEVELS.includes(def.level), `${def.name}: level ${def.level}`);
    assert.ok(def.message.length >= 10, `${def.name}: message too short`);
    assert.ok(def.resolution.length > 0, `${def.name}: resolution missing`);
    // placeholders are simple identifiers
    for (const m of (def.message + def.resolution).matchAll(/\{([^}]*)\}/g)) assert.match(m[1]!, /^[A-Za-z_][A-Za-z0-9_]*$/, `${def.name}: placeholder {${m[1]}}`);
  }
});

test('every Error and Warning has an actionable resolution', () => {
  for (const def of ALL_EVENTS.filter((e) => e.level !== 'Information')) {
    assert.ok(def.resolution.length >= 60, `${def.name}: resolution too short to be actionable`);
    assert.doesNotMatch(def.resolution, /^no action needed/i, `${def.name}: an error/warning needs an action`);
    // names a command, a setting or a concrete step
    assert.match(def.resolution, /`[^`]+`|\b(check|run|set|fix|update|increase)\b/i, `${def.name}: resolution names no action`);
  }
});

test('Information events say no action is needed (or when one is)', () => {
  for (const def of ALL_EVENTS.filter((e) => e.level === 'Information')) {
    assert.match(def.resolution, /no action needed/i, def.name);
  }
});

test("the incumbent's IDs keep their meanings", () => {
  const expected: [number, string, string][] = [
    [0, 'AUTH_USER_OR_PASSWORD_INCORRECT', 'Error'],
    [115, 'CLOUD_ACCESS_DENIED', 'Error'],
    [116, 'DELETION_THRESHOLD_EXCEEDED', 'Error'],
    [611, 'PHS_DOMAIN_ERROR', 'Error'],
    [613, 'PHS_PAUSED_UNTIL_FULL_SYNC', 'Warning'],
    [650, 'PHS_BATCH_START', 'Information'],
    [651, 'PHS_BATCH_END', 'Information'],
    [652, 'PHS_BATCH_ERROR', 'Error'],
    [653, 'PHS_PING_START', 'Information'],
    [654, 'PHS_HEARTBEAT', 'Information'],
    [655, 'PHS_PING_ERROR', 'Error'],
    [656, 'PHS_CHANGE_REQUEST', 'Information'],
    [657, 'PHS_CHANGE_RESULT', 'Information'],
    [6900, 'PCN_ERROR', 'Error'],
  ];
  for (const [id, name, level] of expected) {
    const def = eventById(id);
    assert.ok(def, `event ${id} missing`);
    assert.equal(def.name, name);
    assert.equal(def.level, level);
    assert.equal(def.source, 'Directory Synchronization');
  }
  assert.match(EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT.message, /^The user name or password is incorrect/);
  assert.match(EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT.resolution, /idsync credentials set \{connector\}/);
  assert.match(EVENTS.AUTH_USER_OR_PASSWORD_INCORRECT.resolution, /no restart/i);
  assert.match(EVENTS.CLOUD_ACCESS_DENIED.message, /^Access to the cloud directory has been denied/);
  assert.match(EVENTS.CLOUD_ACCESS_DENIED.resolution, /idsync credentials set cloud/);
  assert.match(EVENTS.CLOUD_ACCESS_DENIED.resolution, /idsync configure/);
  assert.match(EVENTS.CLOUD_ACCESS_DENIED.resolution, /queued/i);
  assert.match(EVENTS.DELETION_THRESHOLD_EXCEEDED.resolution, /idsync sync --allow-deletes/);
  assert.match(EVENTS.PCN_ERROR.message, /^The server encountered an unexpected error while processing a password change notification/);
});

test('own IDs sit in their documented ranges', () => {
  const ranges: Record<string, [number, number][]> = {
    'idsync Sync Engine': [[6001, 6099], [6300, 6399], [6580, 6589]],
    'idsync Service': [[6100, 6199], [6550, 6569]],
    'idsync Credentials': [[6200, 6299]],
    'idsync Password Sync': [[6400, 6429]],
    'Directory Synchronization': [[0, 999], [6900, 6900]],
  };
  for (const def of ALL_EVENTS) {
    assert.ok(ranges[def.source]!.some(([lo, hi]) => def.id >= lo && def.id <= hi), `${def.name} (${def.id}) outside the ${def.source} range`);
  }
});

test('lookups', () => {
  assert.equal(eventById(655), EVENTS.PHS_PING_ERROR);
  assert.equal(eventById(12345), undefined);
  assert.equal(eventByName('phs_heartbeat'), EVENTS.PHS_HEARTBEAT);
  assert.equal(eventByName('NOPE'), undefined);
  assert.ok(Object.isFrozen(EVENTS) && Object.isFrozen(EVENTS.PHS_HEARTBEAT));
});
