/** `idsync passwords status|resync|deliver` on a data directory, against a real cloud directory. */
import { strict as assert } from 'node:assert';
import type { IdsyncError } from '../../src/core/errors.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { registerAgentCommands } from '../../src/cli/commands/agent.js';
import { registerPasswordsCommands } from '../../src/cli/commands/passwords.js';
import { loadConfig } from '../../src/config/load.js';
import { openContext } from '../../src/engine/context.js';
import { startTestCloud, type TestCloud } from '../helpers/cloud.js';
import { addUser, createCloudUser, MIGRATIONS } from './sources/fixtures.js';
import { migrate } from '../../src/store/database.js';
import { openPipeline, WAITS_FOR_CLOUD_CREDENTIAL } from '../../src/cli/commands/passwords.js';

async function run(args: string[]): Promise<string> {
  const program = new Command('idsync').option('-c, --config <file>').exitOverride();
  registerPasswordsCommands(program);
  registerAgentCommands(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  // Only text: the test runner itself reports on stdout with binary chunks.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (typeof chunk === 'string') {
      out += chunk;
      return true;
    }
    return (write as (c: Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(['node', 'idsync', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

describe('idsync passwords (CLI)', () => {
  let cloud: TestCloud;
  let dir: string;
  let configFile: string;
  before(async () => {
    cloud = await startTestCloud();
    dir = mkdtempSync(path.join(tmpdir(), 'idsync-phs-cli-'));
    configFile = path.join(dir, 'idsync.yaml');
    writeFileSync(
      configFile,
      `dataDir: ./data
connectors:
  - { type: ldif, name: corp, path: ./users.ldif }
cloud:
  url: ${cloud.url}
  auth: { type: client_credentials, clientId: ${cloud.syncClientId} }
  retries: 0
`,
    );
    const ctx = openContext(loadConfig(configFile));
    try {
      migrate(ctx.db, MIGRATIONS);
      ctx.credentials.set('cloud', cloud.syncSecret);
      const u = addUser(ctx.db, { sam: 'gina' });
      await createCloudUser(cloud, u);
      const { pipeline, cloud: client } = openPipeline(ctx);
      await pipeline.acceptPassword('gina', 'Gina-Passw0rd-1');
      await client.close();
    } finally {
      ctx.close();
    }
  });
  after(async () => {
    await cloud.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('status, deliver, resync', async () => {
    let status = JSON.parse(await run(['-c', configFile, 'passwords', 'status', 'gina', '--json']));
    assert.equal(status.outbox.depth, 1);
    assert.equal(status.records[0].status, 'Queued');
    const delivered = JSON.parse(await run(['-c', configFile, 'passwords', 'deliver', '--json']));
    assert.equal(delivered.delivered, 1);
    assert.equal(delivered.outbox.depth, 0);
    status = JSON.parse(await run(['-c', configFile, 'passwords', 'status', 'gina@lab.test', '--json']));
    assert.equal(status.records[0].status, 'Success');
    const text = await run(['-c', configFile, 'passwords', 'status', 'gina']);
    assert.match(text, /Success/);
    for (const out of [text, JSON.stringify(status), JSON.stringify(delivered)]) {
      assert.ok(!out.includes('PPH1') && !out.includes('Gina-Passw0rd-1'));
    }
    const resync = JSON.parse(await run(['-c', configFile, 'passwords', 'resync', '--all', '--json']));
    assert.equal(resync.queued, 1);
    await assert.rejects(run(['-c', configFile, 'passwords', 'resync']), /name one user or pass --all/);
  });

  it('a change that waits because the cloud refused the stored credential says so, and the fix', async () => {
    const withContext = async (fn: (ctx: ReturnType<typeof openContext>) => Promise<void>) => {
      const ctx = openContext(loadConfig(configFile));
      try {
        await fn(ctx);
      } finally {
        ctx.close();
      }
    };
    // The cloud's secret changed under us (KB 2962509): the stored one is refused once, and recorded.
    await withContext(async (ctx) => ctx.credentials.set('cloud', 'not-the-cloud-secret'));
    process.exitCode = undefined;
    await run(['-c', configFile, 'passwords', 'deliver', '--json']).catch(() => undefined);
    process.exitCode = undefined;
    let status = JSON.parse(await run(['-c', configFile, 'passwords', 'status', 'gina', '--json']));
    assert.equal(status.records[0].status, 'Error', 'the queued resync met the refusal');
    // `passwords deliver` presents nothing now: it says why, with the fix, and fails.
    await assert.rejects(run(['-c', configFile, 'passwords', 'deliver']), (err: IdsyncError) => {
      assert.equal(err.code, 'CLOUD_AUTH_FAILED');
      assert.match(err.message, /refused the credential .* does not present it again until it changes/);
      assert.match(err.hint ?? '', /idsync credentials set cloud/);
      return true;
    });
    // A newer change is not tried with the refused secret: it waits, and says why.
    await withContext(async (ctx) => {
      const { pipeline, cloud: client } = openPipeline(ctx);
      await pipeline.acceptPassword('gina', 'Gina-Passw0rd-2');
      await client.close();
    });
    status = JSON.parse(await run(['-c', configFile, 'passwords', 'status', 'gina', '--json']));
    assert.equal(status.records[0].status, 'Queued');
    assert.equal(status.records[0].reason, WAITS_FOR_CLOUD_CREDENTIAL);
    assert.match(await run(['-c', configFile, 'passwords', 'status', 'gina']), /refused the stored credential; run `idsync credentials set cloud`/);
    // A locked account is not a wrong secret: the advice is to wait, not to set it again.
    await withContext(async (ctx) => {
      ctx.credentials.set('cloud', 'secret-while-locked');
      ctx.credentials.guard('cloud').refused('secret-while-locked', { code: 'locked', reason: 'the cloud account is locked for 60 s', lockedSeconds: 60 });
    });
    status = JSON.parse(await run(['-c', configFile, 'passwords', 'status', 'gina', '--json']));
    assert.equal(status.records[0].status, 'Queued');
    assert.match(status.records[0].reason, /^waits: the cloud account is locked until \d{4}-.*setting it again sooner cannot help\)$/);
    // Fixed: the wait is an ordinary one again.
    await withContext(async (ctx) => ctx.credentials.set('cloud', cloud.syncSecret));
    status = JSON.parse(await run(['-c', configFile, 'passwords', 'status', 'gina', '--json']));
    assert.equal(status.records[0].status, 'Queued');
    assert.equal(status.records[0].reason, null);
  });
});
