/**
 * The sync console under TLS: served on HTTPS with the service's certificate (verified against the
 * test CA: no verification switched off), the session cookie gets `Secure`, and only an https
 * Origin counts as the console's own. Plain HTTP on a non-loopback address is refused outright.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { writeConsoleAccount } from '../../src/console/account.js';
import { SyncService } from '../../src/service/service.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { createTestCa, issueServerCert } from '../helpers/tls.js';

const PASSWORD = 'Console-tls-pass-1!';

describe('sync console under TLS', { skip: skipUnless('openssl') }, () => {
  let lab: EngineLab;
  let service: SyncService;
  let url: string;
  let agent: Agent;

  before(async () => {
    lab = await startEngineLab({ prefix: 'idsync-console-tls-', connectors: [ldifConnector()], files: { 'source.ldif': 'version: 1\n' } });
    const ca = createTestCa(lab.dir);
    const cert = issueServerCert(lab.dir, ca);
    agent = new Agent({ connect: { ca: readFileSync(ca.certFile) } });
    const ctx = lab.detachContext();
    await writeConsoleAccount(ctx.loaded.dataDir, 'admin', PASSWORD, { logN: 10, r: 8, p: 1 });
    service = new SyncService(ctx, { port: 0, intervalMs: 3_600_000, logger: false, tls: { cert: cert.certFile, key: cert.keyFile } });
    ({ url } = await service.start());
    await service.idle();
  });

  after(async () => {
    await service?.stop(5000).catch(() => undefined);
    await agent?.close();
    await lab?.close();
  });

  test('plain HTTP on a non-loopback address is refused (so is its console)', () => {
    assert.throws(() => new SyncService(lab.reopen(), { host: '0.0.0.0', logger: false }), (e: { code?: string }) => e.code === 'CONFIG_INVALID');
    lab.closeContext();
  });

  test('the page is served over https; the session cookie is Secure, HttpOnly, SameSite=Strict', async () => {
    assert.match(url, /^https:/);
    const page = await request(`${url}/console/`, { dispatcher: agent });
    assert.equal(page.statusCode, 200);
    assert.match(await page.body.text(), /<script type="module" src="\/console\/console.js">/);
    const http = await request(`${url}/console/api/signin`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: url.replace('https:', 'http:') },
      body: JSON.stringify({ username: 'admin', password: PASSWORD }),
    });
    await http.body.dump();
    assert.equal(http.statusCode, 403, 'an http Origin is not this https console');
    const res = await request(`${url}/console/api/signin`, {
      dispatcher: agent,
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: url },
      body: JSON.stringify({ username: 'admin', password: PASSWORD }),
    });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    const cookie = String(res.headers['set-cookie']);
    assert.match(cookie, /; HttpOnly/);
    assert.match(cookie, /; SameSite=Strict/);
    assert.match(cookie, /; Secure/);
    assert.match(cookie, /; Path=\/console/);
  });
});
