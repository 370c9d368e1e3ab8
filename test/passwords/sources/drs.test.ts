/** The parts of the drs password source that need no DC (the DC parts: test/e2e/passwords-drs*.test.ts). */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DrsStateStore, ntlmAccount, parsePollInterval } from '../../../src/passwords/sources/drs.js';
import { openDatabase } from '../../../src/store/database.js';
import { allMigrations } from '../../../src/app/migrations.js';
import { configSchema } from '../../../src/config/schema.js';

describe('drs password source', () => {
  it('takes the NTLM account from DOMAIN\\user or a UPN, not from a DN', () => {
    assert.deepEqual(ntlmAccount('LAB\\svc-idsync'), { domain: 'LAB', user: 'svc-idsync' });
    assert.deepEqual(ntlmAccount('svc@lab.test'), { domain: '', user: 'svc@lab.test' });
    assert.equal(ntlmAccount('CN=svc,CN=Users,DC=lab,DC=test'), undefined);
  });

  it('parses poll intervals', () => {
    assert.equal(parsePollInterval('1s'), 1000);
    assert.equal(parsePollInterval('250ms'), 250);
    assert.equal(parsePollInterval('2m'), 120_000);
    assert.throws(() => parsePollInterval('soon'), /pollInterval/);
  });

  it('the configuration accepts passwords: { source: drs } on AD connectors with defaults, and refuses unknown keys', () => {
    const base = { connectors: [{ name: 'corp', type: 'ad', url: 'ldaps://dc1', bindDn: 'svc@x', baseDn: 'DC=x', passwords: { source: 'drs' } }], cloud: { url: 'https://c.example' } };
    const cfg = configSchema.parse(base);
    const c = cfg.connectors[0];
    assert.ok(c?.type === 'ad' && c.passwords);
    assert.equal(c.passwords.pollInterval, '1s');
    assert.equal(c.passwords.epmPort, 135);
    assert.equal(c.passwords.maxObjects, 1000);
    const bad = structuredClone(base) as { connectors: { passwords: Record<string, unknown> }[] };
    bad.connectors[0]!.passwords.kerberos = true;
    assert.throws(() => configSchema.parse(bad), /kerberos/);
  });

  it('stores the replication state per connector with the DC invocation ID; 64-bit USNs survive', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-drs-state-'));
    const db = openDatabase(path.join(dir, 'idsync.db'), allMigrations);
    try {
      const store = new DrsStateStore(db);
      assert.equal(store.load('corp'), undefined);
      const st = {
        invocationId: '134e76d3-3939-40ab-af6e-9fe9ced76bd4',
        highWaterMark: { tmpHighestUsn: 2n ** 62n + 3n, reservedUsn: 0n, highestUsn: 4004n },
        upToDateness: [{ invocationId: '134e76d3-3939-40ab-af6e-9fe9ced76bd4', highestUsn: 4004n }],
      };
      store.save('corp', st, true);
      assert.deepEqual(store.load('corp'), st);
      store.forget();
      assert.equal(store.load('corp'), undefined);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
