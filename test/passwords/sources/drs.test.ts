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
import { refusesState } from '../../../src/drsuapi/errors.js';

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

  it('says why a saved state cannot be used (a full pass follows), and which full pass was cut short', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idsync-drs-state-'));
    const db = openDatabase(path.join(dir, 'idsync.db'), allMigrations);
    try {
      const store = new DrsStateStore(db);
      assert.deepEqual(store.read('corp'), { none: true });
      const st = { invocationId: '134e76d3-3939-40ab-af6e-9fe9ced76bd4', highWaterMark: { tmpHighestUsn: 10n, reservedUsn: 0n, highestUsn: 0n }, upToDateness: [] };
      store.save('corp', st, false);
      assert.deepEqual(store.read('corp'), { state: st, fullDone: false }, 'a page of a full pass: resumed, and the pass is not done');
      store.save('corp', st, true);
      assert.equal((store.read('corp') as { fullDone: boolean }).fullDone, true);
      const corrupt = (json: string, inv = st.invocationId): unknown => {
        db.prepare('UPDATE phs_drs_state SET state = ?, invocation_id = ? WHERE connector = ?').run(json, inv, 'corp');
        return store.read('corp');
      };
      assert.deepEqual(corrupt('{"hwm":["1"'), { unreadable: 'it is not JSON' });
      assert.match((corrupt('{"hwm":["1","0","x"],"utd":[]}') as { unreadable: string }).unreadable, /"x" is not a USN/);
      assert.match((corrupt('{"utd":[]}') as { unreadable: string }).unreadable, /no high-water mark/);
      assert.match((corrupt('{"hwm":["1","0","2"],"utd":[]}', 'not-a-guid') as { unreadable: string }).unreadable, /invocation ID/);
      assert.equal(store.load('corp'), undefined);
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a WERROR that refuses the request gets a full pass; rights and transient DC trouble do not', () => {
    assert.equal(refusesState(0x20f5), true, 'ERROR_DS_DRA_INVALID_PARAMETER');
    assert.equal(refusesState(0x210b), true, 'ERROR_DS_DRA_SOURCE_REINSTALLED');
    assert.equal(refusesState(0x57), true, 'WERR_INVALID_PARAMETER');
    assert.equal(refusesState(0x2105), false, 'ERROR_DS_DRA_ACCESS_DENIED: event 611, the same with a full pass');
    for (const w of [0x20f6, 0x210f, 0x210d, 0x2107]) assert.equal(refusesState(w), false, `transient 0x${w.toString(16)}`);
    assert.equal(refusesState(5), false, 'ERROR_ACCESS_DENIED');
  });
});
