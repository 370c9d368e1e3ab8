/**
 * `idsync demo`: the embedded default end to end. Starts the cloud directory in this process,
 * generates the sample directory (LDIF), writes a configuration, provisions a sync client in the
 * cloud (its secret goes straight into the encrypted credential store), and runs one cycle.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { createSyncClient, fetchToken } from '../cloud/admin-api-client.js';
import { createCloudServer } from '../cloud/server.js';
import { loadConfig } from '../config/load.js';
import { IdsyncError } from '../core/errors.js';
import { openContext } from '../engine/context.js';
import { runCycle, type CycleProgress } from '../engine/cycle.js';
import type { RunRecord } from '../engine/runs.js';
import { CLOUD_CONNECTOR } from '../connectors/registry.js';
import { generateSampleDirectory } from './sample-directory.js';

const MARKER = '.idsync-demo';
export const DEMO_CLIENT_ID = 'idsync-demo-sync';

export interface DemoOptions {
  dir: string;
  port: number;
  users: number;
  onProgress?: (p: CycleProgress) => void;
}

export interface DemoResult {
  dir: string;
  configFile: string;
  cloudUrl: string;
  tokenFile: string;
  sample: { users: number; groups: number };
  run: RunRecord;
  /** Stops the cloud directory. */
  stop(): Promise<void>;
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const dir = path.resolve(opts.dir);
  if (existsSync(dir)) {
    if (!existsSync(path.join(dir, MARKER))) {
      throw new IdsyncError('CONFIG_INVALID', `${dir} exists and was not made by \`idsync demo\``, {
        hint: 'Choose another folder with --dir, or remove this one.',
      });
    }
    rmSync(dir, { recursive: true, force: true }); // a demo always starts fresh
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(dir, MARKER), 'made by idsync demo; safe to delete\n');

  const sample = generateSampleDirectory(opts.users);
  writeFileSync(path.join(dir, 'sample-directory.ldif'), sample.ldif);

  const adminPassword = `demo-${crypto.randomUUID()}`;
  const cloud = await startCloud(dir, opts.port, adminPassword);
  try {
    const clientSecret = await createSyncClient(cloud.url, { username: 'admin', password: adminPassword }, DEMO_CLIENT_ID);
    const configFile = path.join(dir, 'idsync.yaml');
    writeFileSync(
      configFile,
      '# Written by `idsync demo`. Credentials are not here: they are in the encrypted store in data/.\n' +
        stringify({
          dataDir: './data',
          connectors: [{ name: 'sample', type: 'ldif', path: './sample-directory.ldif' }],
          cloud: { url: cloud.url, auth: { type: 'client_credentials', clientId: DEMO_CLIENT_ID } },
        }),
    );
    const ctx = openContext(loadConfig(configFile));
    let run: RunRecord;
    try {
      ctx.credentials.set(CLOUD_CONNECTOR, clientSecret);
      run = await runCycle(ctx, { onProgress: opts.onProgress });
    } finally {
      ctx.close();
    }
    const tokenFile = path.join(dir, 'access-token');
    const accessToken = await fetchToken(cloud.url, { grant_type: 'client_credentials', client_id: DEMO_CLIENT_ID, client_secret: clientSecret });
    writeFileSync(tokenFile, accessToken, { mode: 0o600 });
    return { dir, configFile, cloudUrl: cloud.url, tokenFile, sample: { users: sample.users, groups: sample.groups }, run, stop: cloud.close };
  } catch (err) {
    await cloud.close();
    throw err;
  }
}

async function startCloud(dir: string, port: number, adminPassword: string) {
  const dataDir = path.join(dir, 'cloud');
  try {
    return await createCloudServer({ dataDir, port, adminUser: 'admin', adminPassword, logger: false });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
    return createCloudServer({ dataDir, port: 0, adminUser: 'admin', adminPassword, logger: false });
  }
}
