/**
 * Issue 9, defect 4: the default deletion threshold has a percentage part, so a truncated or empty
 * source file cannot delete a small directory (the end-to-end cases are in
 * test/hostile/sync/values.test.ts). Here: the arithmetic and the configuration default.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/load.js';
import { DEFAULT_DELETION_THRESHOLD } from '../../src/config/schema.js';
import { deletionThresholdCount } from '../../src/engine/export.js';

const minimal = 'dataDir: ./d\nconnectors:\n  - { name: hr, type: ldif, path: ./x.ldif }\ncloud: { url: "http://127.0.0.1:1" }\n';

describe('deletion threshold', () => {
  test('the default is "500 or 10%"', () => {
    assert.equal(DEFAULT_DELETION_THRESHOLD, '500 or 10%');
    assert.equal(parseConfigText(minimal, '/x.yaml').config.sync.deletionThreshold, '500 or 10%');
  });

  test('"500 or 10%": the smaller of both, at least one', () => {
    assert.equal(deletionThresholdCount('500 or 10%', 0), 1);
    assert.equal(deletionThresholdCount('500 or 10%', 9), 1);
    assert.equal(deletionThresholdCount('500 or 10%', 30), 3);
    assert.equal(deletionThresholdCount('500 or 10%', 300), 30);
    assert.equal(deletionThresholdCount('500 or 10%', 5000), 500);
    assert.equal(deletionThresholdCount('500 or 10%', 1_000_000), 500);
    assert.equal(deletionThresholdCount('20 or 2.5%', 1000), 20);
    assert.equal(deletionThresholdCount('20 or 2.5%', 400), 10);
  });

  test('a count or a percentage alone keeps its meaning', () => {
    assert.equal(deletionThresholdCount(500, 30), 500);
    assert.equal(deletionThresholdCount(0, 30), 0);
    assert.equal(deletionThresholdCount('10%', 30), 3);
    assert.equal(deletionThresholdCount('10%', 5), 0);
  });

  test('the configuration accepts the three forms and refuses others with file:line', () => {
    for (const t of ['500', '"10%"', '"500 or 10%"', '500 or 10%']) {
      assert.doesNotThrow(() => parseConfigText(`${minimal}sync:\n  deletionThreshold: ${t}\n`, '/x.yaml'), t);
    }
    for (const t of ['"10% or 500"', '"lots"', '-1', '"500 or"', '"1000%"']) {
      assert.throws(() => parseConfigText(`${minimal}sync:\n  deletionThreshold: ${t}\n`, '/x.yaml'), /\/x\.yaml:6: sync\.deletionThreshold/, t);
    }
  });
});
