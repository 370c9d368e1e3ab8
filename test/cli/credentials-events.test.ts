/**
 * Issue 8, point 4: `idsync credentials set` writes the credential events the wizard writes (6201
 * when saved, 6202 when the directory refused it and the working credential was kept), and
 * `credentials list` shows the agent token as configured once it is set. Through the real CLI
 * (bin/idsync.js) against a real cloud directory; the secrets never appear in any output or event.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { ldifConnector, startEngineLab, type EngineLab } from '../helpers/engine-lab.js';
import { idsync } from '../helpers/processes.js';

interface EventJson {
  id: number;
  message: string;
  resolution: string;
  details: Record<string, unknown>;
}

interface ListRow {
  connector: string;
  configured: boolean;
  set: boolean;
}

describe('credentials set writes 6201/6202; credentials list shows the agent token', () => {
  let cloud: TestCloud;
  let lab: EngineLab;
  const cli = (args: string[], input?: string) => idsync(['-c', lab.configFile, ...args], input);
  const events = async (ids: string): Promise<EventJson[]> => {
    const r = await cli(['events', '--id', ids, '--json']);
    assert.equal(r.code, 0, r.out);
    return JSON.parse(r.out) as EventJson[];
  };
  const list = async (): Promise<ListRow[]> => {
    const r = await cli(['credentials', 'list', '--json']);
    assert.equal(r.code, 0, r.out);
    return (JSON.parse(r.out) as { credentials: ListRow[] }).credentials;
  };

  before(async () => {
    cloud = await startTestCloud();
    lab = await startEngineLab({ prefix: 'idsync-cli-cred-events-', connectors: [ldifConnector()], cloud, files: { 'source.ldif': 'version: 1\n' }, credentials: false });
  });

  after(async () => {
    await lab?.close();
    await cloud?.close();
  });

  test('a refused secret: exit 3, event 6202 with the reason, nothing saved, the secret nowhere', async () => {
    const wrong = `Wrong-${randomBytes(6).toString('hex')}`;
    const r = await cli(['credentials', 'set', 'cloud'], `${wrong}\n`);
    assert.equal(r.code, 3, r.out);
    assert.match(r.out, /CREDENTIAL_INVALID/);
    const refused = await events('6202');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.details.connector, 'cloud');
    assert.match(refused[0]!.message, /refused by its directory and not saved/);
    assert.match(refused[0]!.message, /incorrect/);
    assert.deepEqual(await events('6201'), [], 'nothing was saved, so no change event');
    const all = await cli(['events', '--json']);
    assert.doesNotMatch(all.out + r.out, new RegExp(wrong));
    assert.equal((await list()).find((c) => c.connector === 'cloud')?.set, false);
  });

  test('a working secret: exit 0 and event 6201; the agent token too, and list shows it configured', async () => {
    const r = await cli(['credentials', 'set', 'cloud'], `${cloud.syncSecret}\n`);
    assert.equal(r.code, 0, r.out);
    const changed = await events('6201');
    assert.deepEqual(changed.map((e) => e.details.connector), ['cloud']);
    assert.match(changed[0]!.message, /was changed; every component uses it from its next call/);

    const before = await list();
    assert.equal(before.find((c) => c.connector === 'agent'), undefined, 'no agent token yet: not listed as missing either');
    const token = randomBytes(24).toString('base64url');
    const a = await cli(['credentials', 'set', 'agent', '--no-validate'], `${token}\n`);
    assert.equal(a.code, 0, a.out);
    assert.deepEqual((await events('6201')).map((e) => e.details.connector).sort(), ['agent', 'cloud']);
    const agent = (await list()).find((c) => c.connector === 'agent');
    assert.deepEqual(agent && { configured: agent.configured, set: agent.set }, { configured: true, set: true });
    const text = await cli(['credentials', 'list']);
    assert.match(text.out, /^agent\s+yes/m);
    assert.doesNotMatch(text.out, /agent \(not configured\)/);
    assert.doesNotMatch(text.out + (await cli(['events', '--json'])).out, new RegExp(token));
  });

  test('credentials test and doctor present a refused secret once, then report the recorded refusal', async () => {
    const failures = (): number =>
      (cloud.server.db!.prepare("SELECT count(*) AS n FROM audit_log WHERE type = 'token' AND subject = ? AND result = 'failure'").get(cloud.syncClientId) as { n: number }).n;
    const r = await cli(['credentials', 'set', 'cloud', '--no-validate'], 'Stale-Client-Secret-7\n');
    assert.equal(r.code, 0, r.out);
    const before = failures();
    const first = await cli(['credentials', 'test', 'cloud']);
    assert.equal(first.code, 3, first.out);
    assert.match(first.out, /incorrect \(invalid_client\)/);
    for (let i = 0; i < 3; i++) {
      const again = await cli(['credentials', 'test', 'cloud']);
      assert.equal(again.code, 3, again.out);
      assert.match(again.out, /does not present it again until it changes/);
    }
    const doctor = await cli(['doctor', '--json']);
    assert.equal(doctor.code, 1, doctor.out);
    const finding = (JSON.parse(doctor.out) as { findings: { target?: string; eventId?: number; message: string; fix?: string }[] }).findings.find((f) => f.eventId === 115);
    assert.match(finding?.message ?? '', /refused the stored credential at .*not presented again/);
    assert.equal(finding?.fix, 'idsync credentials set cloud');
    assert.equal(failures() - before, 1, 'one failed sign-in for four tests and a doctor run');

    const fixed = await cli(['credentials', 'set', 'cloud'], `${cloud.syncSecret}\n`);
    assert.equal(fixed.code, 0, fixed.out);
    assert.equal((await cli(['credentials', 'test', 'cloud'])).code, 0);
  });
});
