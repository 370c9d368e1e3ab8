/**
 * The floors of bench/sync.ts: what each stage of a sync cycle costs when done with nothing but the
 * library it rests on, measured in the same run against the same directory and the same cloud
 * software, so a stage's "measured vs floor" is a ratio taken side by side:
 *   - import: a raw ldapts paged read (pages of 1,000) of the same users and groups;
 *   - sync:   a raw SQLite upsert of the same number of rows (one prepared statement, 10k-row
 *             transactions, WAL) into a fresh database with the engine's schema;
 *   - export: raw SCIM Bulk (100 operations per request, 8 requests in flight over an undici Pool)
 *             of the same users, then the same groups with their members, to a fresh cloud process.
 * Each figure carries its wall seconds and this process's CPU seconds.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'ldapts';
import { Pool } from 'undici';
import { fetchToken } from '../src/cloud/admin-api-client.js';
import { LDAP_DEFAULT_GROUP_FILTER, LDAP_DEFAULT_USER_FILTER, LDAP_GROUP_ATTRIBUTES, LDAP_USER_ATTRIBUTES } from '../src/connectors/ldap/index.js';
import { SCHEMA_ENTERPRISE, SCHEMA_GROUP, SCHEMA_ONPREM_USER, SCHEMA_USER } from '../src/engine/flows.js';
import { openDatabase } from '../src/store/database.js';
import { allMigrations } from '../src/app/migrations.js';

export interface Floor {
  objects: number;
  seconds: number;
  cpuSeconds: number;
}

/** The bench directory as LDIF for slapadd: N users (benchUser) and N/100 groups of 100 members. */
/**
 * The bench directory: n users and n/100 groups of 100 members. `order`: 'members-first' (every
 * user, then every group: what slapd returns to an import in that order) or 'groups-first' (each
 * group right before its members, as in a directory whose objects were created over time: an
 * import meets groups that list users it has not staged yet).
 */
export async function writeBenchLdif(file: string, n: number, order: 'members-first' | 'groups-first' = 'members-first', randomAnchors = false): Promise<void> {
  const out = createWriteStream(file);
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  const user = (i: number): string => {
    let entry = `dn: uid=u${i},ou=people,dc=lab,dc=test\nobjectClass: inetOrgPerson\n${randomAnchors ? `entryUUID: ${randomUUID()}\n` : ''}`;
    for (const [k, v] of Object.entries(benchUser(i))) entry += `${k}: ${v}\n`;
    return `${entry}\n`;
  };
  const group = (g: number): string => {
    let members = '';
    for (let i = g * 100; i < g * 100 + 100; i++) members += `member: uid=u${i},ou=people,dc=lab,dc=test\n`;
    return `dn: cn=g${g},ou=groups,dc=lab,dc=test\nobjectClass: groupOfNames\ncn: g${g}\n${randomAnchors ? `entryUUID: ${randomUUID()}\n` : ''}${members}\n`;
  };
  const groups = Math.floor(n / 100);
  if (order === 'groups-first') {
    for (let i = 0; i < n; i++) {
      if (i % 100 === 0 && i / 100 < groups) await write(group(i / 100));
      await write(user(i));
    }
  } else {
    for (let i = 0; i < n; i++) await write(user(i));
    for (let g = 0; g < groups; g++) await write(group(g));
  }
  out.end();
  await once(out, 'finish');
}

/** The attributes of bench user i, as written to the directory (bench/sync.ts's LDIF uses this too). */
export function benchUser(i: number): Record<string, string> {
  return {
    uid: `u${i}`,
    cn: `User ${i}`,
    sn: `U${i}`,
    givenName: 'User',
    mail: `u${i}@bench.test`,
    title: 'Engineer',
    departmentNumber: `D${i % 50}`,
    employeeNumber: String(i),
  };
}

async function measure(fn: () => Promise<number>): Promise<Floor> {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const objects = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  return { objects, seconds, cpuSeconds: (used.user + used.system) / 1e6 };
}

/** A raw paged read of every user and group, with the LDAP connector's filters and attributes. */
export function ldapFloor(ldap: { url: string; bindDn: string; password: string; baseDn: string }): Promise<Floor> {
  return measure(async () => {
    const client = new Client({ url: ldap.url });
    await client.bind(ldap.bindDn, ldap.password);
    let n = 0;
    try {
      for (const [filter, attributes] of [
        [LDAP_DEFAULT_USER_FILTER, LDAP_USER_ATTRIBUTES],
        [LDAP_DEFAULT_GROUP_FILTER, LDAP_GROUP_ATTRIBUTES],
      ] as const) {
        for await (const page of client.searchPaginated(ldap.baseDn, { scope: 'sub', filter, attributes: [...attributes], paged: { pageSize: 1000 } })) n += page.searchEntries.length;
      }
    } finally {
      await client.unbind();
    }
    return n;
  });
}

/** A raw upsert of n connector-space rows (the bench users' content), 10k rows per transaction. */
export function sqliteFloor(n: number): Promise<Floor> {
  const dir = mkdtempSync(path.join(tmpdir(), 'idsync-floor-sqlite-'));
  const db = openDatabase(path.join(dir, 'floor.db'), allMigrations);
  const upsert = db.prepare(
    `INSERT INTO cs_objects (connector, anchor, object_type, dn, dn_norm, attrs, hash, pending) VALUES ('bench', ?, 'user', ?, ?, ?, ?, 'add')
     ON CONFLICT (connector, anchor) DO UPDATE SET attrs = excluded.attrs, hash = excluded.hash, pending = 'update'`,
  );
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const dn = `uid=u${i},ou=people,dc=lab,dc=test`;
      const attrs = JSON.stringify(benchUser(i));
      upsert.run(`00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`, dn, dn, attrs, `h${i}`);
    }
  });
  return measure(async () => {
    for (let i = 0; i < n; i += 10_000) batch(i, Math.min(n, i + 10_000));
    return n;
  }).finally(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
}

/** Raw SCIM Bulk of `users` users and `groups` groups of 100 members to a cloud with its sync client. */
export async function bulkFloor(cloud: { url: string; clientId: string; secret: string }, users: number, groups: number): Promise<Floor> {
  const token = await fetchToken(cloud.url, { grant_type: 'client_credentials', client_id: cloud.clientId, client_secret: cloud.secret });
  const pool = new Pool(cloud.url, { connections: 8, pipelining: 1 });
  const headers = { 'content-type': 'application/scim+json', authorization: `Bearer ${token}` };
  const bulk = async (ops: unknown[]): Promise<{ status: string; location?: string }[]> => {
    const res = await pool.request({
      method: 'POST',
      path: '/scim/v2/Bulk',
      headers,
      body: JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:BulkRequest'], Operations: ops }),
    });
    const body = (await res.body.json()) as { Operations?: { status: string; location?: string }[] };
    if (res.statusCode !== 200 || !body.Operations) throw new Error(`raw Bulk answered HTTP ${res.statusCode}`);
    return body.Operations;
  };
  const ids: string[] = new Array<string>(users);
  const inFlight = async (count: number, perRequest: number, op: (i: number) => unknown, done: (i: number, r: { location?: string }) => void) => {
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const from = next;
        next = Math.min(count, next + perRequest);
        const ops: unknown[] = [];
        for (let i = from; i < next; i++) ops.push(op(i));
        const results = await bulk(ops);
        results.forEach((r, k) => done(from + k, r));
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  };
  try {
    return await measure(async () => {
      await inFlight(
        users,
        100,
        (i) => {
          const u = benchUser(i);
          return {
            method: 'POST',
            path: '/Users',
            bulkId: `u${i}`,
            data: {
              // The same resource the engine's default outbound flow makes of this entry.
              schemas: [SCHEMA_USER, SCHEMA_ENTERPRISE, SCHEMA_ONPREM_USER],
              externalId: `floor-${i}`,
              userName: u.mail,
              name: { givenName: u.givenName, familyName: u.sn },
              displayName: u.cn,
              title: u.title,
              active: true,
              emails: [{ value: u.mail, type: 'work', primary: true }],
              [SCHEMA_ENTERPRISE]: { department: u.departmentNumber, employeeNumber: u.employeeNumber },
              [SCHEMA_ONPREM_USER]: { onPremisesSamAccountName: u.uid, onPremisesDistinguishedName: `uid=${u.uid},ou=people,dc=lab,dc=test`, onPremisesDomainName: 'lab.test', onPremisesImmutableId: `floor-${i}` },
            },
          };
        },
        (i, r) => (ids[i] = r.location?.split('/').pop() ?? ''),
      );
      await inFlight(
        groups,
        100,
        (g) => ({
          method: 'POST',
          path: '/Groups',
          bulkId: `g${g}`,
          data: {
            schemas: [SCHEMA_GROUP],
            externalId: `floor-g${g}`,
            displayName: `g${g}`,
            members: ids.slice(g * 100, g * 100 + 100).map((value) => ({ value, type: 'User' })),
          },
        }),
        () => undefined,
      );
      return users + groups;
    });
  } finally {
    await pool.close();
  }
}
