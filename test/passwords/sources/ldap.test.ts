import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import type { CloudClient } from '../../../src/connectors/cloud/client.js';
import type { SourceObject } from '../../../src/connectors/types.js';
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

describe('observeNtHash (polled LDAP source)', () => {
  let env: Env;
  let pipeline: PasswordPipeline;
  before(() => {
    env = makeEnv();
    pipeline = makePipeline(env, () => {
      throw new Error('no delivery in this test') as unknown as CloudClient;
    });
  });
  after(() => env.cleanup());

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
    const fp = env.db.prepare('SELECT nt_fp FROM phs_state WHERE anchor = ?').pluck().get(u.anchor) as Buffer;
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
