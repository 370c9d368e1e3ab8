/**
 * The drs source when the DC refuses the saved replication state, against the runner's Samba DC.
 *
 * Samba accepts any saved state (an unknown high-water mark is echoed back; see
 * test/e2e/passwords-drs-restart.test.ts for the states it does expose: USN rollback, an unreadable
 * row), so the one thing faked here is the DC's answer to the incremental call: a wrapper around
 * the real DrsClient answers it once with the WERROR under test, as a Windows DC answers a state
 * it will not serve (e.g. ERROR_DS_DRA_SOURCE_REINSTALLED). Everything else is real: the DC, the
 * NTLM bind, the replication, the SQLite store and the password pipeline's outbox.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { configSchema } from '../../src/config/schema.js';
import { CloudClient } from '../../src/connectors/cloud/client.js';
import { isIdsyncError } from '../../src/core/errors.js';
import { DrsClient, type DrsConnectOptions } from '../../src/drsuapi/client.js';
import { accessDenied, drsFailed, ERROR_DS_DRA_ACCESS_DENIED } from '../../src/drsuapi/errors.js';
import { DRS_INIT_SYNC } from '../../src/drsuapi/messages.js';
import { EventLog } from '../../src/events/log.js';
import { PasswordPipeline } from '../../src/passwords/index.js';
import { DrsPasswordSource, DrsStateStore } from '../../src/passwords/sources/drs.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { allMigrations } from '../../src/app/migrations.js';
import { skipUnless } from '../helpers/integration.js';
import { deleteAdTree, seedAdUsers, setPasswordChange, useSambaDC, type SambaDC, type SeededAd } from '../helpers/samba.js';

describe('drs source: the DC refuses the saved state', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let seeded: SeededAd;
  let dir: string;
  let db: Database;
  /** The WERROR the next incremental GetNCChanges answers with (once), or none. */
  let refuseNext: number | undefined;

  const setPassword = async (dn: string, pw: string): Promise<void> => {
    const c = await dc.client();
    try {
      await c.modify(dn, setPasswordChange(pw));
    } finally {
      await c.unbind();
    }
  };
  const connectClient = async (o: DrsConnectOptions): Promise<DrsClient> => {
    const client = await DrsClient.connect(o);
    const real = client.getNCChanges.bind(client);
    client.getNCChanges = async (...args) => {
      const flags = args[2];
      if (refuseNext !== undefined && (flags & DRS_INIT_SYNC) === 0) {
        const w = refuseNext;
        refuseNext = undefined;
        // as DrsClient.getNCChanges maps the WERROR
        throw w === ERROR_DS_DRA_ACCESS_DENIED ? accessDenied('LAB\\Administrator', dc.baseDn) : drsFailed('IDL_DRSGetNCChanges', w);
      }
      return real(...args);
    };
    return client;
  };
  const events = (id: number): string[] => (db.prepare('SELECT message FROM events WHERE id = ? ORDER BY rowid').all(id) as { message: string }[]).map((r) => r.message);

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: 'drsrefused', users: 3, password: 'Initial-Ref-1!' });
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-drs-refused-'));
    db = openDatabase(path.join(dir, 'idsync.db'), allMigrations);
  });
  after(async () => {
    db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await deleteAdTree(dc, seeded.ouDn).catch(() => undefined);
    await dc.stop();
  });

  it('an ERROR_DS_DRA_* refusal → event 6403 and a full pass that queues only the change made meanwhile; busy or access denied → no full pass', async () => {
    const cfg = configSchema.parse({
      connectors: [
        {
          name: 'corp', type: 'ad', url: dc.ldapsUrl, bindDn: 'LAB\\Administrator', baseDn: dc.baseDn,
          scope: { include: [seeded.ouDn] }, passwords: { source: 'drs', host: '127.0.0.1' },
        },
      ],
      cloud: { url: 'http://127.0.0.1:9' },
    });
    const connector = cfg.connectors[0];
    assert.ok(connector?.type === 'ad' && connector.passwords);
    const events0 = new EventLog(db);
    // nothing is delivered here: the outbox is what the source writes to
    const cloud = new CloudClient({ url: 'http://127.0.0.1:9', auth: { type: 'client_credentials', clientId: 't' }, timeoutMs: 1000, concurrency: 1, retries: 0, bulkSize: 50, refusedCredentialRecheck: '15m' }, async () => undefined);
    const pipeline = new PasswordPipeline({ db, cloud, events: events0, key: randomBytes(32) });
    const source = new DrsPasswordSource({ db, pipeline, connector: { ...connector, passwords: connector.passwords }, secret: async () => dc.adminPassword, events: events0, connectClient });
    const store = new DrsStateStore(db);
    try {
      const first = await source.pollOnce();
      assert.equal(first.full, true);
      assert.equal(first.queued, 3, 'the three users of the OU');

      // a transient refusal: the poll fails, the state stays, no full pass
      const saved = store.load('corp');
      refuseNext = 0x20f6; // ERROR_DS_DRA_BUSY
      await assert.rejects(source.pollOnce(), (err: unknown) => isIdsyncError(err, 'DRS_FAILED'));
      assert.deepEqual(store.load('corp'), saved);
      assert.equal(events(6403).length, 0);

      // the rights went away meanwhile: 611's business (the caller's), not a full pass
      refuseNext = 0x2105;
      await assert.rejects(source.pollOnce(), (err: unknown) => isIdsyncError(err, 'DRS_ACCESS_DENIED'));
      assert.deepEqual(store.load('corp'), saved);

      // a refusal of the state itself, with a change made meanwhile
      await setPassword(seeded.users[1]!.dn, 'Changed-Ref-2!');
      refuseNext = 0x210b; // ERROR_DS_DRA_SOURCE_REINSTALLED
      const r = await source.pollOnce();
      assert.equal(r.full, true, 'a full pass from zero');
      assert.equal(r.queued, 1, 'only the changed hash is queued again');
      assert.equal(events(6403).length, 1);
      assert.match(events(6403)[0]!, /refused/);
      assert.match(events(6403)[0]!, /0x0000210b/);
      assert.match(events(6400).at(-1)!, /refused the saved replication state \(WERROR 0x0000210b\)/);
      assert.ok(store.load('corp'), 'a new state is saved');
      const quiet = await source.pollOnce();
      assert.equal(quiet.full, false, 'incremental again');
      assert.equal(quiet.queued, 0);
    } finally {
      await source.stop();
      await pipeline.stop();
    }
  });
});
