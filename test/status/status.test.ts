/**
 * One truth about status (issue 11, point 3), through the real CLI against a real slapd (NT hashes
 * in sambaNTPassword) and a real cloud: `doctor`, `service status` and `passwords status` ask the
 * status module (src/status) and so agree on the outbox, the password pipeline's last sign of life,
 * a user's password history and a credential's state; `passwords resync --all` queues only users
 * that still exist.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { outboxStatus } from '../../src/status/index.js';
import { skipUnless } from '../helpers/integration.js';
import { startSambaNtLab, type SambaNtLab } from '../helpers/passwords.js';
import { runCli } from '../helpers/run-cli.js';

interface Finding {
  check: string;
  status: string;
  message: string;
}

describe('status answers agree across commands (real slapd + cloud)', { skip: skipUnless('slapd') }, () => {
  let lab: SambaNtLab;
  const cli = (...args: string[]) => runCli(['-c', lab.config, ...args]);
  const doctor = async (check: string): Promise<Finding> => {
    const r = await cli('doctor', '--json');
    const findings = (JSON.parse(r.stdout) as { findings: Finding[] }).findings;
    return findings.find((f) => f.check === check)!;
  };

  before(async () => {
    lab = await startSambaNtLab({ count: 4, uidPrefix: 'u', cnPrefix: 'U', passwordOf: (i) => `Initial-${i}!` }, 'idsync-status-');
    // A failed test recorded before any run: a good run afterwards must win.
    lab.ctx.credentials.recordTest('ldap', false, 'LDAP_UNREACHABLE');
  });
  after(async () => {
    await lab?.close();
  });

  it('after a good cycle: a failed earlier test is not "the" status; the password pipeline\'s batch counts as activity everywhere', async () => {
    const sync = await cli('sync');
    assert.equal(sync.code, 0, sync.stderr);
    const status = await cli('service', 'status');
    assert.match(status.stdout, /ldap\s+changed .*, ok: run 1 used it/);
    assert.doesNotMatch(status.stdout, /ldap .*FAILED/);
    assert.match(status.stdout, /password sync: last batch \(event 651\) \d+ s ago; no heartbeat \(654\) yet; outbox nothing waiting/);
    const hb = await doctor('password-heartbeat');
    assert.equal(hb.status, 'ok');
    assert.match(hb.message, /event 651/);
    const ob = await doctor('password-outbox');
    assert.equal(ob.message, 'password outbox: nothing waiting');
  });

  it('a user\'s history shows the Success that event 657 reported', async () => {
    const events = await cli('events', '--id', '657', '--json');
    assert.match(events.stdout, /"result": "Success"/);
    const r = await cli('passwords', 'status', 'u3');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Success/);
    assert.doesNotMatch(r.stdout, /no password changes recorded/);
    const unknown = await cli('passwords', 'status', 'nobody-here');
    assert.match(unknown.stdout, /no user "nobody-here" in any connector space/);
  });

  it('resync --all queues only users that exist (not a deleted one), and every command counts the outbox the same', async () => {
    await lab.slapd.modify(`dn: uid=u2,ou=people,${lab.slapd.baseDn}\nchangetype: delete\n`);
    // A full import sees the deletion (an LDAP delta import without the accesslog overlay does not).
    const sync = await cli('sync', '--full');
    assert.equal(sync.code, 0, sync.stderr);
    const resync = await cli('passwords', 'resync', '--all', '--json');
    assert.equal(resync.code, 0, resync.stderr);
    assert.equal((JSON.parse(resync.stdout) as { queued: number }).queued, 3, 'u0, u1, u3: not the deleted u2');

    const o = outboxStatus(lab.ctx.db);
    assert.equal(o.depth, 3);
    const expected = /3 password change\(s\) waiting: 3 to deliver/;
    assert.match((await doctor('password-outbox')).message, expected);
    assert.match((await cli('service', 'status')).stdout, new RegExp(`outbox ${expected.source}`));
    assert.match((await cli('passwords', 'status', 'u0')).stdout, new RegExp(`outbox: ${expected.source}`));
    const json = JSON.parse((await cli('service', 'status', '--json')).stdout) as { offline: { outbox: { depth: number; deliverable: number } } };
    assert.deepEqual([json.offline.outbox.depth, json.offline.outbox.deliverable], [3, 3]);

    const deliver = await cli('passwords', 'deliver');
    assert.equal(deliver.code, 0, deliver.stderr);
    assert.match(deliver.stdout, /delivered 3, .*outbox: nothing waiting/);
    assert.equal((await doctor('password-outbox')).message, 'password outbox: nothing waiting');
  });
});
