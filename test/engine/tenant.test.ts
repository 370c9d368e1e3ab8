/**
 * A second installation does not silently share a tenant (issue 11, point 5): through the real CLI,
 * two idsync installations (each its own folder and database) against one real cloud directory and
 * one real slapd, signing in as the same sync client. The second one's export is refused before it
 * writes anything, with both ways out; staging mode makes it a standby; `cloud.takeOverFrom` moves
 * the export to it, after which the first is the one refused.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { skipUnless } from '../helpers/integration.js';
import { runCli } from '../helpers/run-cli.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';

interface Run {
  status: string;
  steps: { step: string; adds: number; updates: number; deletes: number }[];
  error?: { code: string; message: string };
}

describe('a second installation against the same tenant (real slapd + cloud)', { skip: skipUnless('slapd') }, () => {
  let slapd: Slapd;
  let cloud: TestCloud;
  let first: EngineLab;
  let second: EngineLab;

  before(async () => {
    slapd = await startSlapd();
    await slapd.add(['ann', 'bob', 'cho', 'dee', 'eve'].map((u) => `dn: uid=${u},ou=people,${slapd.baseDn}\nobjectClass: inetOrgPerson\nuid: ${u}\ncn: ${u}\nsn: ${u}\n`).join('\n'));
    cloud = await startTestCloud();
    const connector = { name: 'corp-ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn, scope: { include: [`ou=people,${slapd.baseDn}`] } };
    const lab = (prefix: string) => startEngineLab({ prefix, cloud, connectors: [connector], credentials: { 'corp-ldap': slapd.adminPassword }, keepOpen: false });
    first = await lab('idsync-tenant-a-');
    second = await lab('idsync-tenant-b-');
  });
  after(async () => {
    await first?.close();
    await second?.close();
    await cloud?.close();
    await slapd?.stop();
  });

  const sync = async (lab: EngineLab) => {
    const r = await runCli(['-c', lab.configFile, 'sync', '--json']);
    return { code: r.code, run: JSON.parse(r.stdout) as Run, stderr: r.stderr };
  };
  const exportStep = (run: Run) => run.steps.find((s) => s.step === 'export')!;

  it('the first installation exports; the cloud records it as the tenant\'s exporter', async () => {
    const a = await sync(first);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(exportStep(a.run).adds, 5);
    const res = await request(`${cloud.url}/api/v1/syncInstallations`, { headers: { authorization: `Bearer ${await adminToken(cloud)}` } });
    const body = (await res.body.json()) as { installations: { principal: string; writes: number }[] };
    assert.equal(body.installations.length, 1);
    assert.equal(body.installations[0]!.principal, cloud.syncClientId);
  });

  let firstId = '';
  it('a second installation is refused before writing anything, naming the other and both ways out', async () => {
    const before = (await cloud.all('Users')).map((u: { id: string; meta: { version: string } }) => `${u.id}:${u.meta.version}`).sort();
    const b = await sync(second);
    assert.equal(b.code, 2, 'an explicit choice in the configuration is needed');
    assert.equal(b.run.status, 'failed');
    assert.equal(b.run.error?.code, 'CLOUD_TENANT_SHARED');
    assert.match(b.run.error!.message, /another idsync installation already exports to the cloud directory/);
    assert.equal(exportStep(b.run).adds, 0, 'no "5 added" while nothing was added');
    firstId = /already exports to the cloud directory at \S+: ([0-9a-f-]{36}) \(signed in as /.exec(b.run.error!.message)?.[1] ?? '';
    assert.ok(firstId, `the other installation is named: ${b.run.error!.message}`);
    const text = await runCli(['-c', second.configFile, 'sync']);
    assert.match(text.stdout, /stagingMode: true/);
    assert.match(text.stdout, new RegExp(`takeOverFrom: \\["${firstId}"\\]`));
    const after = (await cloud.all('Users')).map((u: { id: string; meta: { version: string } }) => `${u.id}:${u.meta.version}`).sort();
    assert.deepEqual(after, before, 'the cloud is untouched');
    const events = await runCli(['-c', second.configFile, 'events', '--id', '6320', '--json']);
    assert.match(events.stdout, /"id": 6320/);
  });

  it('in staging mode the second installation is a standby: it syncs and shows pending exports, writes nothing', async () => {
    second.writeConfig({ sync: { stagingMode: true } });
    const versions = async () => (await cloud.all('Users')).map((u: { id: string; meta: { version: string } }) => `${u.id}:${u.meta.version}`).sort();
    const before = await versions();
    const b = await sync(second);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.run.status, 'success');
    assert.deepEqual(await versions(), before, 'a standby writes nothing');
    const text = await runCli(['-c', second.configFile, 'sync']);
    assert.match(text.stdout, /Staging mode: nothing was written to the cloud directory\. Pending exports: 5/);
  });

  it('with takeOverFrom the second takes over; then the first is the one refused', async () => {
    second.writeConfig({ sync: { stagingMode: false }, cloud: { ...(second.config.cloud as object), takeOverFrom: [firstId] } });
    const b = await sync(second);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.run.status, 'success');
    const a = await sync(first);
    assert.equal(a.code, 2);
    assert.equal(a.run.error?.code, 'CLOUD_TENANT_SHARED');
  });
});

async function adminToken(cloud: TestCloud): Promise<string> {
  const res = await request(`${cloud.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: cloud.admin.username, password: cloud.admin.password, scope: 'idsync.api' }).toString(),
  });
  return ((await res.body.json()) as { access_token: string }).access_token;
}
