import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { requireBinary, skipUnless } from './integration.js';
import { startSlapd } from './slapd.js';

describe('integration gates', () => {
  it('requireBinary skips when a binary is missing, unless IDSYNC_REQUIRE_INTEGRATION=1', () => {
    const saved = { path: process.env.PATH, req: process.env.IDSYNC_REQUIRE_INTEGRATION };
    try {
      process.env.PATH = '/nonexistent';
      delete process.env.IDSYNC_REQUIRE_INTEGRATION;
      let skipped = '';
      assert.equal(requireBinary({ skip: (m?: string) => void (skipped = m ?? '') }, 'openssl'), false);
      assert.match(skipped, /openssl not installed/);
      process.env.IDSYNC_REQUIRE_INTEGRATION = '1';
      assert.throws(() => skipUnless('openssl'), /IDSYNC_REQUIRE_INTEGRATION=1 but openssl not installed/);
    } finally {
      process.env.PATH = saved.path;
      if (saved.req === undefined) delete process.env.IDSYNC_REQUIRE_INTEGRATION;
      else process.env.IDSYNC_REQUIRE_INTEGRATION = saved.req;
    }
  });
});

describe('startSlapd', { skip: skipUnless('slapd') }, () => {
  it('starts, accepts add/modify, logs writes in cn=accesslog, and stop() kills it and removes its dir', async () => {
    const s = await startSlapd({ accesslog: true, sambaSchema: true });
    try {
      assert.match(s.url, /^ldap:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(existsSync(s.ldapiPath));
      await s.add('dn: uid=zed,ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\nobjectClass: sambaSamAccount\nuid: zed\ncn: Zed\nsn: Z\nsambaSID: S-1-5-21-1-1\n');
      await s.modify('dn: uid=zed,ou=people,dc=lab,dc=test\nchangetype: modify\nreplace: sambaNTPassword\nsambaNTPassword: 6E7C56FF00000000000000000000D73\n'.replace('D73', '8D73'));
      const c = await s.client();
      try {
        const r = await c.search('dc=lab,dc=test', { filter: '(uid=zed)', attributes: ['sambaNTPassword'] });
        assert.equal(r.searchEntries[0]?.sambaNTPassword, '6E7C56FF000000000000000000008D73');
        const log = await c.search('cn=accesslog', { filter: '(&(objectClass=auditWriteObject)(reqResult=0))', attributes: ['reqType', 'reqDN'] });
        assert.deepEqual(log.searchEntries.map((e) => e.reqType), ['add', 'modify']);
      } finally {
        await c.unbind();
      }
    } finally {
      await s.stop();
    }
    assert.ok(!existsSync(s.dir));
    assert.throws(() => process.kill(s.pid, 0));
  });
});
