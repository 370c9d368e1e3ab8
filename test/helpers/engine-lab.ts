/**
 * Shared setup for engine-level tests: a temp folder with source files and an idsync.yaml pointing
 * at a test cloud, the engine context opened on it with the cloud credential stored; and the AD
 * connector block and the slapd + cloud pair that several suites need.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { stringify } from 'yaml';
import { loadConfig, type LoadedConfig } from '../../src/config/load.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { startTestCloud, type TestCloud } from './cloud.js';
import type { SambaDC, SeededAd } from './samba.js';
import { startSlapd, type Slapd } from './slapd.js';
import { testStoreConfig, type TestStoreKind } from './store.js';

type Doc = Record<string, unknown>;

export interface EngineLabOptions {
  /** Temp folder name prefix (default `idsync-engine-`). */
  prefix?: string;
  connectors: Doc[];
  /** A cloud the caller owns (not closed by the lab); default: a new one, closed with the lab. */
  cloud?: TestCloud;
  /** The URL written into the configuration (default the cloud's own, e.g. a proxy in front of it). */
  cloudUrl?: string;
  /** More keys of the configuration's `cloud:` (retries, bulkSize, timeoutMs, auth...). */
  cloudConfig?: Doc;
  sync?: Doc;
  rules?: Doc;
  /** Files written into the folder before the configuration (name → text). */
  files?: Record<string, string>;
  /**
   * Secrets stored besides the cloud's (name → secret). `false`: no context is opened at all
   * (the test stores its credentials itself).
   */
  credentials?: Record<string, string> | false;
  /** Keep the engine context open (default true); false closes it once the credentials are stored. */
  keepOpen?: boolean;
  /** The store, whatever IDSYNC_TEST_STORE says (default: what it says; test/helpers/store.ts). */
  store?: TestStoreKind;
}

export interface EngineLab {
  cloud: TestCloud;
  dir: string;
  configFile: string;
  /** The configuration as last written. */
  config: Doc;
  /** The configuration as last loaded (by the start or `reopen()`). */
  loaded: LoadedConfig;
  /** The open engine context (throws when it is closed). */
  readonly ctx: EngineContext;
  /** A path in the lab's folder. */
  path(name: string): string;
  writeFile(name: string, text: string): void;
  /** Rewrites idsync.yaml with these top-level keys replaced. */
  writeConfig(patch?: Doc): void;
  /** Closes the context if open and opens a new one on the configuration file as it is now. */
  reopen(): EngineContext;
  closeContext(): void;
  /** Hands the open context over to its new owner (e.g. a service that closes it): the lab forgets it. */
  detachContext(): EngineContext;
  /** Closes the context, the cloud when the lab started it, and removes the folder. */
  close(): Promise<void>;
}

export async function startEngineLab(options: EngineLabOptions): Promise<EngineLab> {
  const cloud = options.cloud ?? (await startTestCloud());
  const dir = mkdtempSync(path.join(tmpdir(), options.prefix ?? 'idsync-engine-'));
  const configFile = path.join(dir, 'idsync.yaml');
  const store = await testStoreConfig(options.store);
  let ctx: EngineContext | undefined;
  const lab: EngineLab = {
    cloud,
    dir,
    configFile,
    config: {
      dataDir: './data',
      ...(store ? { store } : {}),
      connectors: options.connectors,
      cloud: { url: options.cloudUrl ?? cloud.url, auth: { type: 'client_credentials', clientId: cloud.syncClientId }, ...options.cloudConfig },
      ...(options.sync ? { sync: options.sync } : {}),
      ...(options.rules ? { rules: options.rules } : {}),
    },
    loaded: undefined as unknown as LoadedConfig,
    get ctx() {
      if (!ctx) throw new Error('the engine context is closed');
      return ctx;
    },
    path: (name) => path.join(dir, name),
    writeFile: (name, text) => writeFileSync(path.join(dir, name), text),
    writeConfig: (patch = {}) => {
      lab.config = { ...lab.config, ...patch };
      writeFileSync(configFile, stringify(lab.config));
    },
    reopen: () => {
      lab.closeContext();
      lab.loaded = loadConfig(configFile);
      ctx = openContext(lab.loaded);
      return ctx;
    },
    detachContext: () => {
      const c = lab.ctx;
      ctx = undefined;
      return c;
    },
    closeContext: () => {
      ctx?.close();
      ctx = undefined;
    },
    close: async () => {
      lab.closeContext();
      if (!options.cloud) await cloud.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  for (const [name, text] of Object.entries(options.files ?? {})) lab.writeFile(name, text);
  lab.writeConfig();
  if (options.credentials === false) {
    lab.loaded = loadConfig(configFile);
    return lab;
  }
  const c = lab.reopen();
  for (const [name, secret] of Object.entries(options.credentials ?? {})) c.credentials.set(name, secret);
  c.credentials.set('cloud', cloud.syncSecret);
  if (options.keepOpen === false) lab.closeContext();
  return lab;
}

/** The `ad` connector over LDAPS with the DC's CA, scoped to the seeded OU. */
export function adConnectorConfig(dc: SambaDC, seeded: SeededAd, overrides: Doc = {}): Doc {
  return {
    name: 'corp-ad',
    type: 'ad',
    url: dc.ldapsUrl,
    bindDn: dc.adminUpn,
    baseDn: dc.baseDn,
    tls: { ca: dc.caFile, serverName: dc.tlsServerName },
    scope: { include: [seeded.ouDn] },
    ...overrides,
  };
}

/**
 * A slapd and a cloud for the describe it is called in (started before, stopped after), and temp
 * folders removed after.
 */
export function useSlapdAndCloud(prefix: string): { readonly slapd: Slapd; readonly cloud: TestCloud; tempDir(): string } {
  let slapd: Slapd | undefined;
  let cloud: TestCloud | undefined;
  const dirs: string[] = [];
  before(async () => {
    slapd = await startSlapd();
    cloud = await startTestCloud();
  });
  after(async () => {
    await cloud?.close();
    await slapd?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    rmSync(cloud?.dataDir ?? '/nonexistent', { recursive: true, force: true });
  });
  return {
    get slapd() {
      if (!slapd) throw new Error('slapd is not started');
      return slapd;
    },
    get cloud() {
      if (!cloud) throw new Error('the cloud is not started');
      return cloud;
    },
    tempDir: () => {
      const d = mkdtempSync(path.join(tmpdir(), prefix));
      dirs.push(d);
      return d;
    },
  };
}

/** The LDIF connector most engine tests read from: `hr`, ./source.ldif. */
export function ldifConnector(overrides: Doc = {}): Doc {
  return { name: 'hr', type: 'ldif', path: './source.ldif', ...overrides };
}
