import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { EVENTS_DOC, renderEventsDoc } from '../../scripts/gen-events-doc.js';
import { ALL_EVENTS } from '../../src/events/catalog.js';

test('docs/events.md is generated from the current catalog', () => {
  const current = readFileSync(EVENTS_DOC, 'utf8');
  assert.ok(
    current === renderEventsDoc(),
    'docs/events.md is out of date with src/events/catalog.ts: run `node --import tsx scripts/gen-events-doc.ts`',
  );
});

test('the generated doc lists every event once, with its resolution', () => {
  const doc = renderEventsDoc();
  for (const e of ALL_EVENTS) {
    const rows = doc.split('\n').filter((l) => l.startsWith(`| ${e.id} |`));
    assert.equal(rows.length, 1, `event ${e.id}`);
    assert.ok(rows[0]!.includes(`\`${e.name}\``));
  }
  assert.match(doc, /## Where events are stored/);
  assert.match(doc, /## ID ranges/);
});
