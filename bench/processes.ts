/**
 * Child processes of the sync benches (bench/sync.ts, bench/sync-ab.ts): a node process whose
 * output is kept, the cloud directory started as its own process, ready once it listens, and the
 * sync configuration those processes run with.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import { openContext } from '../src/engine/context.js';
import { NODE_FLAGS } from '../src/service/node-flags.js';

const root = path.resolve(import.meta.dirname, '..');

export interface NodeProcess {
  /** Resolves with stdout on exit 0; rejects with the stderr's tail otherwise. */
  done: Promise<string>;
  child: ReturnType<typeof spawn>;
}

/** `node ARGS` in `cwd` (default: the checkout), stdout kept, the last 4,000 characters of stderr for the error. */
export function runNode(args: string[], env: NodeJS.ProcessEnv = {}, cwd = root): NodeProcess {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  const done = new Promise<string>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${args.join(' ')} exited ${code}: ${err}`)))));
  return { done, child };
}

/** `idsync cloud serve` on DATA_DIR and a free port, from the built CLI with its flags (NODE_FLAGS); resolves once it listens. */
export async function startBenchCloud(dataDir: string, adminPassword: string): Promise<{ url: string; child: ReturnType<typeof spawn> }> {
  const cloud = runNode([...NODE_FLAGS, 'bin/idsync.js', 'cloud', 'serve', '--data', dataDir, '--port', '0'], { IDSYNC_CLOUD_ADMIN_PASSWORD: adminPassword });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    cloud.child.stdout!.on('data', (d: string) => {
      buf += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
    // A cloud that dies before it listens is an error, not a wait (killed at the end otherwise).
    cloud.done.then(() => reject(new Error('the cloud directory exited before it listened')), reject);
  });
  return { url, child: cloud.child };
}

/**
 * The bench's idsync.yaml at CONFIG: the slapd as connector `bench`, the cloud by client
 * credentials, a deletion threshold of N (the bench deletes nothing), and both secrets stored.
 * The connector keeps its default timeoutMs on both stores.
 */
export function writeBenchConfig(
  config: string,
  o: { dataDir: string; store?: Record<string, unknown>; slapd: { url: string; adminDn: string; baseDn: string; adminPassword: string }; cloudUrl: string; cloudSecret: string; n: number },
): void {
  writeFileSync(
    config,
    stringify({
      dataDir: o.dataDir,
      ...(o.store ? { store: o.store } : {}),
      connectors: [{ name: 'bench', type: 'ldap', url: o.slapd.url, bindDn: o.slapd.adminDn, baseDn: o.slapd.baseDn }],
      cloud: { url: o.cloudUrl, auth: { type: 'client_credentials', clientId: 'bench' } },
      sync: { deletionThreshold: o.n },
    }),
  );
  const ctx = openContext(loadConfig(config));
  ctx.credentials.set('cloud', o.cloudSecret);
  ctx.credentials.set('bench', o.slapd.adminPassword);
  ctx.close();
}
