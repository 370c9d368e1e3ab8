/**
 * The Samba DC password agent against a real Samba AD DC (useSambaDC: the runner's shared DC, or
 * one of its own) and a real cloud directory: the initial full password sync, a password change
 * followed to a cloud sign-in within 2 s, the cookie, and the HTTP forwarding with the agent token.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Attribute, Change } from 'ldapts';
import { directForwarder, httpForwarder } from '../../src/agent/forward.js';
import { SambaPasswordAgent } from '../../src/agent/samba.js';
import type { CloudClient } from '../../src/connectors/cloud/client.js';
import { AGENT_BATCH_PATH, handleAgentBatch, verifyBearer } from '../../src/passwords/handlers.js';
import { ntHash } from '../../src/passwords/hash.js';
import type { PasswordPipeline } from '../../src/passwords/pipeline.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { skipUnless } from '../helpers/integration.js';
import { deleteAdTree, seedAdUsers, useSambaDC, type SambaDC, type SeededAd } from '../helpers/samba.js';
import { addUser, cloudClient, createCloudUser, makeEnv, makePipeline, readableState, signIn, type Env, type TestUser } from '../passwords/sources/fixtures.js';

const OU = 'phsagent';
const CONNECTOR = 'corp-ad';

async function setPassword(dc: SambaDC, dn: string, password: string): Promise<void> {
  const c = await dc.client();
  try {
    await c.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${password}"`, 'utf16le')] }) }));
  } finally {
    await c.unbind();
  }
}

async function until(cond: () => Promise<boolean> | boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms`);
    await sleep(25);
  }
  return Date.now() - t0;
}

describe('Samba DC password agent', { skip: skipUnless('samba') }, () => {
  let dc: SambaDC;
  let seeded: SeededAd;
  let cloud: TestCloud;
  let env: Env;
  let client: CloudClient;
  let pipeline: PasswordPipeline;
  let stateDir: string;
  const users: TestUser[] = [];
  const secrets: string[] = [];

  before(async () => {
    dc = await useSambaDC();
    seeded = await seedAdUsers(dc, { ou: OU, users: 3, password: 'Initial-Pw1!' });
    cloud = await startTestCloud();
    env = makeEnv();
    env.credentials.set('cloud', cloud.syncSecret);
    client = cloudClient(cloud, env.credentials);
    pipeline = makePipeline(env, () => client, { pollMs: 50 });
    stateDir = mkdtempSync(path.join(tmpdir(), 'idsync-agent-state-'));
    const c = await dc.client();
    try {
      for (const u of seeded.users) {
        const r = await c.search(u.dn, { scope: 'base', attributes: ['objectGUID'], explicitBufferAttributes: ['objectGUID'] });
        const anchor = (r.searchEntries[0]!.objectGUID as Buffer).toString('base64');
        const tu = addUser(env.db, { sam: u.sAMAccountName, upn: u.userPrincipalName, dn: u.dn, anchor }, CONNECTOR);
        users.push(tu);
        await createCloudUser(cloud, tu);
      }
    } finally {
      await c.unbind();
    }
    for (const p of ['Initial-Pw1!', 'Changed-Pw2!', 'Live-Pw3!', 'Http-Pw4!']) secrets.push(p, (await ntHash(p)).toString('hex'));
  });

  after(async () => {
    await pipeline?.stop();
    await client?.close();
    await cloud?.close();
    if (env) {
      const state = readableState(env.db);
      for (const s of secrets) assert.ok(!state.toLowerCase().includes(s.toLowerCase()), 'a secret leaked into events/status');
      env.cleanup();
    }
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    if (dc) {
      await deleteAdTree(dc, `OU=${OU},${dc.baseDn}`).catch(() => undefined);
      await dc.stop();
    }
  });

  it('the first round is a full password sync; users sign in to the cloud with their AD password', async () => {
    const agent = new SambaPasswordAgent({ ldapi: dc.privLdapiPath, base: dc.baseDn, stateDir, forward: directForwarder(pipeline, CONNECTOR) });
    try {
      const r = await agent.pollOnce();
      assert.ok(r.forwarded >= users.length, `forwarded ${r.forwarded}`);
      assert.ok(existsSync(agent.cookieFile));
      await pipeline.deliverOnce();
      for (const u of users) {
        assert.equal(pipeline.status(u.sam)[0]?.status, 'Success', u.sam);
        assert.ok(await signIn(cloud, u.upn, 'Initial-Pw1!'), u.upn);
      }
      // nothing changed: the next round sends nothing
      assert.equal((await agent.pollOnce()).forwarded, 0);
    } finally {
      await agent.stop();
    }
  });

  it('a password change reaches the cloud sign-in through the cookie (only that user)', async () => {
    const agent = new SambaPasswordAgent({ ldapi: dc.privLdapiPath, base: dc.baseDn, stateDir, forward: directForwarder(pipeline, CONNECTOR) });
    try {
      const u = users[0]!;
      await setPassword(dc, u.dn, 'Changed-Pw2!');
      const r = await agent.pollOnce();
      assert.equal(r.forwarded, 1);
      await pipeline.deliverOnce();
      assert.ok(await signIn(cloud, u.upn, 'Changed-Pw2!'));
      assert.ok(!(await signIn(cloud, u.upn, 'Initial-Pw1!')));
    } finally {
      await agent.stop();
    }
  });

  it('running: change to cloud sign-in within 2 s (agent polling 1 s, pipeline loop)', async () => {
    const agent = new SambaPasswordAgent({ ldapi: dc.privLdapiPath, base: dc.baseDn, stateDir, pollMs: 1000, forward: directForwarder(pipeline, CONNECTOR) });
    pipeline.start();
    agent.start();
    try {
      await sleep(300);
      const u = users[1]!;
      const t0 = Date.now();
      await setPassword(dc, u.dn, 'Live-Pw3!');
      // Poll our own status, not the sign-in: failed sign-ins would trip the cloud's smart lockout.
      await until(async () => pipeline.status(u.sam).some((s) => s.status === 'Success' && Date.parse(s.at) >= t0), 10_000);
      const ms = Date.now() - t0;
      assert.ok(await signIn(cloud, u.upn, 'Live-Pw3!'));
      console.log(`# samba agent: password change to cloud sign-in in ${ms} ms`);
      assert.ok(ms <= 2000, `took ${ms} ms`);
    } finally {
      await agent.stop();
      await pipeline.stop();
    }
  });

  it('http forwarding with the agent token; a wrong token keeps the cookie (nothing skipped)', async () => {
    const token = 'agent-token-0123456789';
    let calls = 0;
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString('utf8')));
      req.on('end', () => {
        calls++;
        void (async () => {
          if (req.url !== AGENT_BATCH_PATH || !verifyBearer(req.headers.authorization, token)) {
            res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'UNAUTHORIZED', message: 'bad agent token' } }));
            return;
          }
          const out = await handleAgentBatch(pipeline, JSON.parse(body));
          res.writeHead(out.statusCode, { 'content-type': 'application/json' }).end(JSON.stringify(out.body));
        })();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const u = users[2]!;
      await setPassword(dc, u.dn, 'Http-Pw4!');
      const wrong = new SambaPasswordAgent({ ldapi: dc.privLdapiPath, base: dc.baseDn, stateDir, forward: httpForwarder(url, () => 'wrong', CONNECTOR) });
      await assert.rejects(wrong.pollOnce(), /HTTP 401/);
      await wrong.stop();
      const right = new SambaPasswordAgent({ ldapi: dc.privLdapiPath, base: dc.baseDn, stateDir, forward: httpForwarder(url, () => token, CONNECTOR) });
      const r = await right.pollOnce();
      await right.stop();
      assert.equal(r.forwarded, 1);
      assert.ok(calls >= 2);
      await pipeline.deliverOnce();
      assert.ok(await signIn(cloud, u.upn, 'Http-Pw4!'));
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
