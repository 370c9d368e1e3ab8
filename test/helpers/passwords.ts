/**
 * Password hash sync tests against OpenLDAP holding NT hashes (the samba schema's sambaNTPassword):
 * users seeded with their hashes, a configuration with an LDAP connector and the cloud, an engine
 * context with the credentials set, and sign-in checks run a few at a time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { testStoreConfig, type TestStoreKind } from './store.js';
import { loadConfig } from '../../src/config/load.js';
import { openContext, type EngineContext } from '../../src/engine/context.js';
import { ntHash } from '../../src/passwords/hash.js';
import { startTestCloud, type TestCloud } from './cloud.js';
import { signIn } from './processes.js';
import { startSlapd, type Slapd } from './slapd.js';

/** A user's NT hash as sambaNTPassword holds it (upper-case hex). */
export async function sambaNtPassword(password: string): Promise<string> {
  return (await ntHash(password)).toString('hex').toUpperCase();
}

export interface SambaNtUsers {
  count: number;
  /** uid of user i is `${uidPrefix}${i}`, mail `${uidPrefix}${i}@lab.test`. */
  uidPrefix: string;
  /** cn of user i is `${cnPrefix} ${i}`. */
  cnPrefix: string;
  passwordOf: (i: number) => string;
}

/** LDIF for users under ou=people,dc=lab,dc=test with their NT hash in sambaNTPassword. */
export async function sambaNtUsersLdif(users: SambaNtUsers): Promise<string> {
  const entries: string[] = [];
  for (let i = 0; i < users.count; i++) {
    const uid = `${users.uidPrefix}${i}`;
    entries.push(
      [
        `dn: uid=${uid},ou=people,dc=lab,dc=test`,
        'objectClass: inetOrgPerson',
        'objectClass: sambaSamAccount',
        `uid: ${uid}`,
        `cn: ${users.cnPrefix} ${i}`,
        `sn: ${i}`,
        `mail: ${uid}@lab.test`,
        `sambaSID: S-1-5-21-1-2-3-${1000 + i}`,
        `sambaNTPassword: ${await sambaNtPassword(users.passwordOf(i))}`,
        '',
      ].join('\n'),
    );
  }
  return entries.join('\n');
}

export interface SambaNtLab {
  slapd: Slapd;
  cloud: TestCloud;
  /** The temp folder holding the configuration and its data folder (./data). */
  dir: string;
  /** The configuration file: one LDAP connector named `ldap`, and the cloud. */
  config: string;
  /** An engine context on the configuration with the `ldap` and `cloud` credentials set. */
  ctx: EngineContext;
  close(): Promise<void>;
}

/**
 * OpenLDAP seeded with the users, a cloud directory, a configuration syncing one to the other and
 * an engine context on it. Whatever started is stopped again by close(), also after a failed start.
 */
export async function startSambaNtLab(users: SambaNtUsers, dirPrefix: string, store?: TestStoreKind): Promise<SambaNtLab> {
  const lab: Partial<SambaNtLab> = {};
  const close = async (): Promise<void> => {
    lab.ctx?.close();
    await lab.cloud?.close();
    await lab.slapd?.stop();
    if (lab.dir) rmSync(lab.dir, { recursive: true, force: true });
  };
  try {
    const slapd = (lab.slapd = await startSlapd({ sambaSchema: true, seedLdif: await sambaNtUsersLdif(users) }));
    const cloud = (lab.cloud = await startTestCloud());
    const dir = (lab.dir = mkdtempSync(path.join(tmpdir(), dirPrefix)));
    const config = (lab.config = path.join(dir, 'idsync.yaml'));
    const storeBlock = await testStoreConfig(store);
    writeFileSync(
      config,
      stringify({
        dataDir: './data',
        ...(storeBlock ? { store: storeBlock } : {}),
        connectors: [{ name: 'ldap', type: 'ldap', url: slapd.url, bindDn: slapd.adminDn, baseDn: slapd.baseDn }],
        cloud: { url: cloud.url, auth: { type: 'client_credentials', clientId: cloud.syncClientId } },
      }),
    );
    const ctx = (lab.ctx = openContext(loadConfig(config)));
    ctx.credentials.set('ldap', slapd.adminPassword);
    ctx.credentials.set('cloud', cloud.syncSecret);
    return { slapd, cloud, dir, config, ctx, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Runs fn for every item, at most `limit` at a time. */
export async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** 0, 1, …, n - 1. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Signs in every user i < n with credentialsOf(i), `limit` at a time; the i for which it failed. */
export async function failedSignIns(cloudUrl: string, n: number, limit: number, credentialsOf: (i: number) => [username: string, password: string]): Promise<number[]> {
  const failed: number[] = [];
  await inParallel(range(n), limit, async (i) => {
    if ((await signIn(cloudUrl, ...credentialsOf(i))) !== 200) failed.push(i);
  });
  return failed;
}
