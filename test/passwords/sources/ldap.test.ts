import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CloudClient } from '../../../src/connectors/cloud/client.js';
import type { SourceConnector, SourceObject } from '../../../src/connectors/types.js';
import { importConnector } from '../../../src/engine/import.js';
import { RunLog } from '../../../src/engine/runs.js';
import { ntHash } from '../../../src/passwords/hash.js';
import type { PasswordPipeline } from '../../../src/passwords/pipeline.js';
import { extractPasswordAttributes } from '../../../src/passwords/sources/ldap.js';
import { addUser, makeEnv, makePipeline, readableState, type Env } from './fixtures.js';

describe('extractPasswordAttributes', () => {
  it('removes sambaNTPassword and unicodePwd from the object and returns the NT hash', async () => {
    const nt = await ntHash('Passw0rd!');
    const o: SourceObject = {
      anchor: 'a',
      objectType: 'user',
      dn: 'uid=a,dc=x',
      attributes: { uid: ['a'], sambantpassword: [nt.toString('hex').toUpperCase()], mail: ['a@x'] },
    };
    const out = extractPasswordAttributes(o);
    assert.ok(out.nt?.equals(nt));
    assert.deepEqual(Object.keys(o.attributes).sort(), ['mail', 'uid']);
  });

  it('reads unicodePwd (base64 of 16 bytes) and strips any spelling of the names', () => {
    const nt = Buffer.alloc(16, 0xab);
    const o: SourceObject = { anchor: 'b', objectType: 'user', dn: 'cn=b', attributes: { unicodePwd: [nt.toString('base64')], cn: ['b'] } };
    assert.ok(extractPasswordAttributes(o).nt?.equals(nt));
    assert.deepEqual(Object.keys(o.attributes), ['cn']);
  });

  it('drops malformed values without returning them', () => {
    const o: SourceObject = { anchor: 'c', objectType: 'user', dn: 'cn=c', attributes: { sambantpassword: ['NO PASSWORD*********************'], cn: ['c'] } };
    assert.deepEqual(extractPasswordAttributes(o), {});
    assert.deepEqual(Object.keys(o.attributes), ['cn']);
    const none: SourceObject = { anchor: 'd', objectType: 'user', dn: 'cn=d', attributes: { cn: ['d'] } };
    assert.deepEqual(extractPasswordAttributes(none), {});
  });
});

/** A source (the SourceConnector interface, implemented here) whose full import is `pages`. */
function ldapSource(pages: () => AsyncGenerator<SourceObject[]>): SourceConnector {
  return { name: 'openldap', kind: 'ldap', test: async () => undefined, close: async () => undefined, fullImport: pages };
}

/** A database and a pipeline that only queues: these tests never deliver. */
function undeliveredPipeline(): { env: Env; pipeline: PasswordPipeline } {
  const env = makeEnv();
  const pipeline = makePipeline(env, () => {
    throw new Error('no delivery in this test') as unknown as CloudClient;
  });
  return { env, pipeline };
}

describe('observeNtHash (polled LDAP source)', () => {
  let env: Env;
  let pipeline: PasswordPipeline;
  before(() => ({ env, pipeline } = undeliveredPipeline()));
  // The pipeline's checkpoint worker has a connection of its own to the folder: ended first.
  after(async () => {
    await pipeline.stop();
    env.cleanup();
  });

  it('queues a hash only when it changed since the last import (keyed fingerprint)', async () => {
    const u = addUser(env.db, { sam: 'olaf' }, 'openldap');
    const nt1 = await ntHash('First-1');
    const nt2 = await ntHash('Second-2');
    assert.equal(await pipeline.observeNtHash('openldap', u.anchor, nt1), true);
    assert.equal(await pipeline.observeNtHash('openldap', u.anchor, nt1), false);
    assert.equal(pipeline.status(u.anchor).length, 1);
    assert.equal(await pipeline.observeNtHash('openldap', u.anchor, nt2), true);
    assert.equal(await pipeline.observeNtHash('openldap', u.anchor, nt2), false);
    assert.equal(pipeline.outbox().depth, 1);
    // the fingerprint is keyed: it is not the NT hash nor a plain digest of it
    const fp = env.db.prepare('SELECT nt_fp FROM phs_users WHERE anchor = ?').pluck().get(u.anchor) as Buffer;
    assert.equal(fp.length, 32);
    assert.ok(!fp.includes(nt2));
    const state = readableState(env.db);
    assert.ok(!state.includes(nt2.toString('hex')) && !state.toLowerCase().includes(nt1.toString('hex')));
    // a full resync forgets fingerprints: the next import queues the current hash again
    await pipeline.resync({ user: 'olaf' });
    assert.equal(await pipeline.observeNtHash('openldap', u.anchor, nt2), true);
  });

  it('observeNtHashes (a page at once, the import path) queues every changed user once, and nothing the second time', async () => {
    const page = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => ({ anchor: addUser(env.db, { sam: `page${i}` }, 'openldap').anchor, nt: await ntHash(`Page-Passw0rd-${i}`) })),
    );
    const before = pipeline.outbox().depth;
    assert.equal(await pipeline.observeNtHashes('openldap', page), 300);
    assert.equal(pipeline.outbox().depth, before + 300, 'every user of the page is in the outbox');
    assert.equal(await pipeline.observeNtHashes('openldap', page), 0, 'unchanged hashes are not queued again');
    const changed = [{ ...page[7]!, nt: await ntHash('Changed-Passw0rd') }];
    assert.equal(await pipeline.observeNtHashes('openldap', [...page.slice(0, 7), ...changed]), 1);
  });
});

describe('the import path against a notification that arrives while a page is read', () => {
  let env: Env;
  let pipeline: PasswordPipeline;
  before(() => ({ env, pipeline } = undeliveredPipeline()));
  // The pipeline's checkpoint worker has a connection of its own to the folder: ended first.
  after(async () => {
    await pipeline.stop();
    env.cleanup();
  });

  it('a page read before a password change, handed over after its notification, does not overwrite the newer hash', async () => {
    const u = addUser(env.db, { sam: 'racer', dn: 'uid=racer,ou=people,dc=lab,dc=test' }, 'openldap');
    const oldNt = await ntHash('Before-Change-1');
    const newNt = await ntHash('After-Change-2');
    // A source whose page holds the hash from
    // before the change, and which hands the page over only once the notification is accepted:
    // the order an LDAP read ahead of the engine and a password change on the DC can take.
    let read!: () => void;
    const pageRead = new Promise<void>((r) => (read = r));
    let handOver!: () => void;
    const handedOver = new Promise<void>((r) => (handOver = r));
    const source = ldapSource(async function* () {
      const page: SourceObject[] = [{ anchor: u.anchor, objectType: 'user', dn: u.dn, attributes: { uid: ['racer'], samaccountname: ['racer'], sambantpassword: [oldNt.toString('hex').toUpperCase()] } }];
      read();
      await handedOver;
      yield page;
    });
    const runs = new RunLog(env.db);
    const step = runs.step(runs.begin('cycle'), 'openldap', 'import');
    const importing = importConnector(env.db, source, step, { full: true, events: env.events, passwords: () => pipeline });
    await pageRead;
    await sleep(5); // the stamps have millisecond resolution: the notification comes a few ms later
    await pipeline.acceptPassword('racer', 'After-Change-2');
    handOver();
    await importing;
    // The state holds the newer hash: observing it again is "unchanged" (on the old code the page's
    // older hash, stamped when it was handed over, replaced it and this was true).
    assert.equal(await pipeline.observeNtHash('openldap', u.anchor, newNt), false, 'the notification\'s hash is the one kept');
    assert.equal(pipeline.outbox().depth, 1);
  });

  it('a page asked for after a notification keeps the newer password it read (a reset in the directory), even in a long import', async () => {
    const other = addUser(env.db, { sam: 'bystander', dn: 'uid=bystander,ou=people,dc=lab,dc=test' }, 'openldap');
    const u = addUser(env.db, { sam: 'resetme', dn: 'uid=resetme,ou=people,dc=lab,dc=test' }, 'openldap');
    const reset = await ntHash('Admin-Reset-P2');
    const entry = (user: typeof u, uid: string, nt: Buffer): SourceObject => ({
      anchor: user.anchor,
      objectType: 'user',
      dn: user.dn,
      attributes: { uid: [uid], samaccountname: [uid], sambantpassword: [nt.toString('hex').toUpperCase()] },
    });
    // The import's first page is slow to come; meanwhile the user changes the password through a
    // portal that notifies (P1), then an administrator resets it in the directory (P2, no
    // notification). The second page is asked for only after both, so it holds P2: the newest.
    let firstAsked!: () => void;
    const asked = new Promise<void>((r) => (firstAsked = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const source = ldapSource(async function* () {
      firstAsked();
      await released;
      yield [entry(other, 'bystander', await ntHash('Bystander-1'))];
      yield [entry(u, 'resetme', reset)];
    });
    const runs = new RunLog(env.db);
    const step = runs.step(runs.begin('cycle'), 'openldap', 'import');
    const importing = importConnector(env.db, source, step, { full: true, events: env.events, passwords: () => pipeline });
    await asked;
    await sleep(5); // millisecond stamps: the notification comes a few ms after the import began
    await pipeline.acceptPassword('resetme', 'Portal-Change-P1');
    await sleep(5);
    release();
    await importing;
    // The reset is kept: observing it again is "unchanged". (Stamped with when the import began,
    // as before, the page's P2 was older than the notification and dropped as stale.)
    assert.equal(await pipeline.observeNtHash('openldap', u.anchor, reset), false, 'the reset read after the notification is the one kept');
  });
});
