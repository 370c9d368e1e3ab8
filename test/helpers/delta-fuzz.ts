/**
 * The differential, randomised delta test (issue 10): a seeded random sequence of directory
 * operations against a real directory (Samba AD DC or OpenLDAP with the accesslog), a DELTA cycle
 * into one cloud after every few operations, and after every cycle a FULL sync of the same
 * directory into a second, fresh engine and cloud. Both clouds must hold the same users (every
 * attribute, the active flag) and groups (members compared by externalId), read through SCIM.
 *
 * Operations: add, delete, re-create with the same name (and DN), rename, move within and across
 * the scope, modify, disable/enable (AD), membership adds/removes (users and groups, nested and
 * cyclic), OUs added, renamed and moved with their children in and out of the scope, two Unicode
 * spellings of one name (AD keeps them apart), and tombstone restore (AD).
 *
 * Used by test/e2e/delta-fuzz.test.ts (short rounds, fixed seeds) and scripts/fuzz-delta.ts
 * (`npm run fuzz:delta -- --steps 2000 [--seed S] [--kind ad|ldap]`).
 */
import { Attribute, Change, type Client } from 'ldapts';
import { runCycle } from '../../src/engine/cycle.js';
import type { RunRecord } from '../../src/engine/runs.js';
import { ShowDeletedControl } from '../../src/ldap/controls.js';
import { guidToString } from '../../src/ldap/guid.js';
import type { TestCloud } from './cloud.js';
import { startEngineLab, type EngineLab } from './engine-lab.js';
import { deleteAdTree, type SambaDC } from './samba.js';
import type { Slapd } from './slapd.js';
import { prng } from './prng.js';
import { diffStores } from './store.js';

export type FuzzKind = 'ad' | 'ldap';

export interface FuzzOptions {
  kind: FuzzKind;
  seed: number;
  steps: number;
  /** Directory operations between two delta cycles (default 4). */
  cycleEvery?: number;
  dc?: SambaDC;
  slapd?: Slapd;
  log?: (line: string) => void;
  /**
   * Differential across stores: the delta engine runs on SQLite and a twin engine on PostgreSQL
   * runs the same delta cycles into a cloud of its own; after every cycle both clouds and both
   * stores' contents must be equal (instead of the comparison with a fresh full sync).
   */
  storeTwin?: boolean;
}

export interface FuzzResult {
  kind: FuzzKind;
  seed: number;
  steps: number;
  cycles: number;
  /** Operations the directory refused (e.g. a name in use): skipped, not a failure. */
  refused: number;
  /** Empty when every cycle matched; else the differences after the first cycle that did not. */
  differences: string[];
  /** The operations applied, for a failing seed's report. */
  ops: string[];
  /** How many operations of each kind were applied (e.g. "restore user": 12). */
  counts: Record<string, number>;
}


type Root = 'in' | 'out';
interface Ou {
  id: number;
  name: string;
  parent: number | Root;
}
interface FuzzUser {
  name: string;
  cn: string;
  ou: number | Root;
  disabled: boolean;
  /** objectGUID (AD), kept after deletion for a restore. */
  guid?: Buffer;
}
interface FuzzGroup {
  name: string;
  ou: number | Root;
}

interface Directory {
  kind: FuzzKind;
  baseDn: string;
  client(): Promise<Client>;
  /** The connector block (scope: the "in" root). */
  connector(inRoot: string): Record<string, unknown>;
  secret: string;
  setup(inRoot: string, outRoot: string): Promise<void>;
  cleanup(inRoot: string, outRoot: string): Promise<void>;
  userRdn(cn: string): string;
  groupRdn(name: string): string;
  ouRdn(name: string): string;
  userEntry(u: FuzzUser, prefix: string): Attribute[];
  groupEntry(name: string): Attribute[];
}

function adDirectory(dc: SambaDC): Directory {
  return {
    kind: 'ad',
    baseDn: dc.baseDn,
    client: () => dc.client(),
    connector: (inRoot) => ({ name: 'fuzz', type: 'ad', url: dc.url, bindDn: dc.adminUpn, baseDn: dc.baseDn, scope: { include: [inRoot] } }),
    secret: dc.adminPassword,
    async setup(inRoot, outRoot) {
      await this.cleanup(inRoot, outRoot);
      const c = await dc.client();
      try {
        for (const [dn, ou] of [[inRoot, rdnName(inRoot)], [outRoot, rdnName(outRoot)]] as const) await c.add(dn, { objectClass: ['top', 'organizationalUnit'], ou });
      } finally {
        await c.unbind();
      }
    },
    async cleanup(inRoot, outRoot) {
      await deleteAdTree(dc, inRoot);
      await deleteAdTree(dc, outRoot);
    },
    userRdn: (cn) => `CN=${escapeRdn(cn)}`,
    groupRdn: (name) => `CN=${name}`,
    ouRdn: (name) => `OU=${name}`,
    userEntry: (u) => [
      new Attribute({ type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'user'] }),
      new Attribute({ type: 'sAMAccountName', values: [u.name] }),
      new Attribute({ type: 'userPrincipalName', values: [`${u.name}@lab.test`] }),
      new Attribute({ type: 'displayName', values: [`Fuzz ${u.name}`] }),
      new Attribute({ type: 'title', values: ['Engineer'] }),
      new Attribute({ type: 'userAccountControl', values: [u.disabled ? '546' : '544'] }),
    ],
    groupEntry: (name) => [
      new Attribute({ type: 'objectClass', values: ['top', 'group'] }),
      new Attribute({ type: 'sAMAccountName', values: [name] }),
    ],
  };
}

function ldapDirectory(slapd: Slapd): Directory {
  const placeholder = `cn=nobody,${slapd.baseDn}`;
  return {
    kind: 'ldap',
    baseDn: slapd.baseDn,
    client: () => slapd.client(),
    connector: (inRoot) => ({
      name: 'fuzz',
      type: 'ldap',
      url: slapd.url,
      bindDn: slapd.adminDn,
      baseDn: slapd.baseDn,
      scope: { include: [inRoot] },
      delta: { accesslogBase: 'cn=accesslog' },
    }),
    secret: slapd.adminPassword,
    async setup(inRoot, outRoot) {
      const c = await slapd.client();
      try {
        for (const dn of [inRoot, outRoot]) await c.add(dn, { objectClass: ['organizationalUnit'], ou: rdnName(dn) });
      } finally {
        await c.unbind();
      }
    },
    async cleanup() {
      // a slapd of its own per round: nothing to clean
    },
    userRdn: (cn) => `cn=${escapeRdn(cn)}`,
    groupRdn: (name) => `cn=${name}`,
    ouRdn: (name) => `ou=${name}`,
    userEntry: (u) => [
      new Attribute({ type: 'objectClass', values: ['inetOrgPerson'] }),
      new Attribute({ type: 'cn', values: [u.cn] }),
      new Attribute({ type: 'sn', values: [u.name] }),
      new Attribute({ type: 'uid', values: [u.name] }),
      new Attribute({ type: 'mail', values: [`${u.name}@ldap.test`] }),
      new Attribute({ type: 'displayName', values: [`Fuzz ${u.name}`] }),
      new Attribute({ type: 'title', values: ['Engineer'] }),
    ],
    // groupOfNames needs a member: one that names no object
    groupEntry: (name) => [
      new Attribute({ type: 'objectClass', values: ['groupOfNames'] }),
      new Attribute({ type: 'cn', values: [name] }),
      new Attribute({ type: 'member', values: [placeholder] }),
    ],
  };
}

function rdnName(dn: string): string {
  return dn.slice(dn.indexOf('=') + 1, dn.indexOf(','));
}

function escapeRdn(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, '\\$1');
}

const TITLES = ['Engineer', 'Architect', 'Analyst', 'Lead', 'Manager'];

/** Runs one round; never throws for a difference (see `differences`), only for broken set-up. */
export async function runDeltaFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const dir = o.kind === 'ad' ? adDirectory(required(o.dc, 'dc')) : ldapDirectory(required(o.slapd, 'slapd'));
  const random = prng(o.seed);
  const pick = <T>(items: T[]): T | undefined => (items.length ? items[Math.floor(random() * items.length)] : undefined);
  const log = o.log ?? (() => undefined);
  const tag = `fz${o.seed % 100000}`;
  const inRoot = `${dir.ouRdn(`${tag}-in`)},${dir.baseDn}`;
  const outRoot = `${dir.ouRdn(`${tag}-out`)},${dir.baseDn}`;
  await dir.setup(inRoot, outRoot);

  const ous: Ou[] = [];
  const users = new Map<string, FuzzUser>();
  const deleted = new Map<string, FuzzUser>();
  const groups = new Map<string, FuzzGroup>();
  let counter = 0;
  const ouDn = (ou: number | Root): string => {
    if (ou === 'in') return inRoot;
    if (ou === 'out') return outRoot;
    const x = ous.find((y) => y.id === ou)!;
    return `${dir.ouRdn(x.name)},${ouDn(x.parent)}`;
  };
  const userDn = (u: FuzzUser) => `${dir.userRdn(u.cn)},${ouDn(u.ou)}`;
  const groupDn = (g: FuzzGroup) => `${dir.groupRdn(g.name)},${ouDn(g.ou)}`;
  /** A container: mostly in scope. */
  const someOu = (): number | Root => {
    const r = random();
    if (r < 0.15) return 'out';
    if (r < 0.45 || ous.length === 0) return 'in';
    return pick(ous)!.id;
  };
  const under = (ou: number | Root, ancestor: number): boolean => {
    for (let x: number | Root = ou; typeof x === 'number'; x = ous.find((y) => y.id === x)!.parent) if (x === ancestor) return true;
    return false;
  };

  const client = await dir.client();
  const ops: string[] = [];
  let refused = 0;
  const readGuid = async (dn: string): Promise<Buffer | undefined> => {
    if (dir.kind !== 'ad') return undefined;
    const r = await client.search(dn, { scope: 'base', attributes: ['objectGUID'], explicitBufferAttributes: ['objectGUID'] });
    const v = r.searchEntries[0]?.objectGUID;
    return Buffer.isBuffer(v) ? v : undefined;
  };

  const operations: { weight: number; run: () => Promise<string | undefined> }[] = [
    {
      weight: 8,
      run: async () => {
        const name = `${tag}u${counter++}`;
        const twinOf = dir.kind === 'ad' && random() < 0.15 ? pick([...users.values()].filter((u) => u.cn.includes('ë'))) : undefined;
        const u: FuzzUser = twinOf
          ? { name, cn: twinOf.cn.replace('ë', 'e\u0308'), ou: twinOf.ou, disabled: false } // the other Unicode spelling, same OU
          : { name, cn: random() < 0.3 ? `Zoë ${name}` : name, ou: someOu(), disabled: false };
        await client.add(userDn(u), dir.userEntry(u, tag));
        u.guid = await readGuid(userDn(u));
        users.set(name, u);
        return `add user ${userDn(u)}`;
      },
    },
    {
      weight: 3,
      run: async () => {
        const u = pick([...users.values()]);
        if (!u) return undefined;
        await client.del(userDn(u));
        users.delete(u.name);
        deleted.set(u.name, u);
        return `delete user ${userDn(u)}`;
      },
    },
    {
      weight: 2,
      run: async () => {
        // the same name (sAMAccountName/UPN, uid/mail) and the same DN: a new anchor
        const old = pick([...deleted.values()]);
        if (!old) return undefined;
        const u: FuzzUser = { name: old.name, cn: old.cn, ou: old.ou, disabled: false };
        await client.add(userDn(u), dir.userEntry(u, tag));
        u.guid = await readGuid(userDn(u));
        deleted.delete(u.name);
        users.set(u.name, u);
        return `re-create user ${userDn(u)}`;
      },
    },
    {
      weight: dir.kind === 'ad' ? 1 : 0,
      run: async () => {
        const old = pick([...deleted.values()].filter((d) => d.guid));
        if (!old) return undefined;
        const found = await client.search(`<GUID=${guidToString(old.guid!)}>`, { scope: 'base', attributes: ['1.1'] }, [new ShowDeletedControl()]);
        const tomb = found.searchEntries[0];
        if (!tomb) return undefined;
        const u: FuzzUser = { ...old, ou: someOu() };
        await client.modify(
          tomb.dn,
          [
            new Change({ operation: 'delete', modification: new Attribute({ type: 'isDeleted', values: [] }) }),
            new Change({ operation: 'replace', modification: new Attribute({ type: 'distinguishedName', values: [userDn(u)] }) }),
            // a tombstone keeps few attributes (no UPN): set it again, as the admin restoring it would
            new Change({ operation: 'replace', modification: new Attribute({ type: 'userPrincipalName', values: [`${u.name}@lab.test`] }) }),
          ],
          [new ShowDeletedControl()],
        );
        deleted.delete(u.name);
        users.set(u.name, u);
        return `restore user ${userDn(u)}`;
      },
    },
    {
      weight: 3,
      run: async () => {
        const u = pick([...users.values()]);
        if (!u) return undefined;
        const from = userDn(u);
        const cn = random() < 0.3 ? `Zoë ${u.name} r${counter++}` : `${u.name} r${counter++}`;
        await client.modifyDN(from, dir.userRdn(cn));
        u.cn = cn;
        return `rename user ${from} -> ${userDn(u)}`;
      },
    },
    {
      weight: 4,
      run: async () => {
        const u = pick([...users.values()]);
        if (!u) return undefined;
        const from = userDn(u);
        const to = someOu();
        await client.modifyDN(from, `${dir.userRdn(u.cn)},${ouDn(to)}`);
        u.ou = to;
        return `move user ${from} -> ${userDn(u)}`;
      },
    },
    {
      weight: 3,
      run: async () => {
        const u = pick([...users.values()]);
        if (!u) return undefined;
        const title = pick(TITLES)!;
        await client.modify(userDn(u), new Change({ operation: 'replace', modification: new Attribute({ type: 'title', values: [title] }) }));
        return `title ${userDn(u)} = ${title}`;
      },
    },
    {
      weight: dir.kind === 'ad' ? 2 : 0,
      run: async () => {
        const u = pick([...users.values()]);
        if (!u) return undefined;
        u.disabled = !u.disabled;
        await client.modify(userDn(u), new Change({ operation: 'replace', modification: new Attribute({ type: 'userAccountControl', values: [u.disabled ? '546' : '544'] }) }));
        return `${u.disabled ? 'disable' : 'enable'} ${userDn(u)}`;
      },
    },
    {
      weight: 2,
      run: async () => {
        const g: FuzzGroup = { name: `${tag}g${counter++}`, ou: someOu() };
        await client.add(groupDn(g), dir.groupEntry(g.name));
        groups.set(g.name, g);
        return `add group ${groupDn(g)}`;
      },
    },
    {
      weight: 1,
      run: async () => {
        const g = pick([...groups.values()]);
        if (!g) return undefined;
        await client.del(groupDn(g));
        groups.delete(g.name);
        return `delete group ${groupDn(g)}`;
      },
    },
    {
      weight: 6,
      run: async () => {
        const g = pick([...groups.values()]);
        if (!g) return undefined;
        // users mostly; groups too, so nesting and cycles happen
        const member = random() < 0.25 ? pick([...groups.values()].map(groupDn)) : pick([...users.values()].map(userDn));
        if (!member) return undefined;
        await client.modify(groupDn(g), new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [member] }) }));
        return `add member ${member} to ${groupDn(g)}`;
      },
    },
    {
      weight: 3,
      run: async () => {
        const g = pick([...groups.values()]);
        if (!g) return undefined;
        const r = await client.search(groupDn(g), { scope: 'base', attributes: ['member'] });
        const current = r.searchEntries[0]?.member;
        const member = pick((Array.isArray(current) ? current : current ? [current] : []).map(String));
        if (!member) return undefined;
        await client.modify(groupDn(g), new Change({ operation: 'delete', modification: new Attribute({ type: 'member', values: [member] }) }));
        return `remove member ${member} from ${groupDn(g)}`;
      },
    },
    {
      weight: 2,
      run: async () => {
        const ou: Ou = { id: counter++, name: `${tag}o${counter}`, parent: someOu() };
        ous.push(ou);
        try {
          await client.add(ouDn(ou.id), { objectClass: ['top', 'organizationalUnit'], ou: ou.name });
        } catch (err) {
          ous.pop();
          throw err;
        }
        return `add OU ${ouDn(ou.id)}`;
      },
    },
    {
      weight: 2,
      run: async () => {
        const ou = pick(ous);
        if (!ou) return undefined;
        const from = ouDn(ou.id);
        const name = `${tag}o${counter++}`;
        await client.modifyDN(from, dir.ouRdn(name));
        ou.name = name;
        return `rename OU ${from} -> ${ouDn(ou.id)}`;
      },
    },
    {
      weight: 3,
      run: async () => {
        const ou = pick(ous);
        if (!ou) return undefined;
        const to = someOu();
        if (to === ou.id || under(to, ou.id)) return undefined;
        const from = ouDn(ou.id);
        await client.modifyDN(from, `${dir.ouRdn(ou.name)},${ouDn(to)}`);
        ou.parent = to;
        return `move OU ${from} -> ${ouDn(ou.id)}`;
      },
    },
  ];
  const total = operations.reduce((n, op) => n + op.weight, 0);
  const nextOp = () => {
    let r = random() * total;
    for (const op of operations) if ((r -= op.weight) < 0) return op;
    return operations[0]!;
  };

  // Random moves of whole OUs out of a small scope are the point here: the percentage part of the
  // default deletion threshold would stop them (the threshold has its own tests); a count stays on.
  const lab = await startEngineLab({ prefix: 'idsync-fuzz-delta-', connectors: [dir.connector(inRoot)], credentials: { fuzz: dir.secret }, sync: { deletionThreshold: 500 }, ...(o.storeTwin ? { store: 'sqlite' as const } : {}) });
  const twin = o.storeTwin
    ? await startEngineLab({ prefix: 'idsync-fuzz-twin-', connectors: [dir.connector(inRoot)], credentials: { fuzz: dir.secret }, sync: { deletionThreshold: 500 }, store: 'postgres' })
    : undefined;
  const result: FuzzResult = { kind: o.kind, seed: o.seed, steps: 0, cycles: 0, refused: 0, differences: [], ops, counts: {} };
  try {
    const first = await runCycle(lab.ctx);
    if (first.status !== 'success') throw new Error(`the first cycle did not succeed: ${JSON.stringify(first.errors)}`);
    if (twin) {
      const t = await runCycle(twin.ctx);
      if (t.status !== 'success') throw new Error(`the twin's first cycle did not succeed: ${JSON.stringify(t.errors)}`);
    }
    const every = o.cycleEvery ?? 4;
    for (let step = 1; step <= o.steps; step++) {
      const op = nextOp();
      try {
        const what = await op.run();
        if (what) {
          ops.push(`${step}: ${what}`);
          const kind = /^[a-z-]+( member| user| group| OU)?/.exec(what)?.[0] ?? what;
          result.counts[kind] = (result.counts[kind] ?? 0) + 1;
        }
      } catch (err) {
        refused++; // e.g. "already exists", a member already there: the directory said no
        ops.push(`${step}: (refused: ${(err as Error).message.split('\n')[0]})`);
      }
      result.steps = step;
      if (step % every !== 0 && step !== o.steps) continue;
      const run = await runCycle(lab.ctx);
      result.cycles++;
      const problems = checkRun(run);
      const differences = [...problems, ...(twin ? await compareWithTwin(lab, twin) : await compareWithFullSync(lab, dir.connector(inRoot), dir.secret))];
      if (differences.length) {
        result.differences = differences;
        log(`seed ${o.seed} (${o.kind}): cycle ${result.cycles} after step ${step} differs`);
        break;
      }
      if (result.cycles % 25 === 0) log(`seed ${o.seed} (${o.kind}): ${step} steps, ${result.cycles} cycles, no difference`);
    }
  } finally {
    result.refused = refused;
    await client.unbind().catch(() => undefined);
    await lab.close();
    await twin?.close();
    await dir.cleanup(inRoot, outRoot).catch(() => undefined);
  }
  return result;
}

function required<T>(v: T | undefined, name: string): T {
  if (v === undefined) throw new Error(`runDeltaFuzz: ${name} is required for this kind`);
  return v;
}

/** A delta cycle must be a delta, and must not claim success while it failed objects. */
function checkRun(run: RunRecord): string[] {
  const out: string[] = [];
  const imp = run.steps.find((s) => s.step === 'import');
  if (imp?.profile !== 'delta') out.push(`run ${run.id}: the import was ${imp?.profile ?? 'missing'}, not a delta`);
  if (run.status !== 'success') out.push(`run ${run.id}: ${run.status}: ${JSON.stringify(run.errors.slice(0, 5))}`);
  return out;
}

/** A second, fresh engine and cloud fully synced from the same directory: what the delta cloud must equal. */
async function compareWithFullSync(delta: EngineLab, connector: Record<string, unknown>, secret: string): Promise<string[]> {
  const fresh = await startEngineLab({ prefix: 'idsync-fuzz-full-', connectors: [connector], credentials: { fuzz: secret } });
  try {
    const run = await runCycle(fresh.ctx, { full: true });
    if (run.status !== 'success') return [`the full sync did not succeed: ${run.status} ${JSON.stringify(run.errors.slice(0, 5))}`];
    return diffSnapshots(await snapshot(delta.cloud), await snapshot(fresh.cloud));
  } finally {
    await fresh.close();
  }
}

/** The twin (PostgreSQL) runs the same delta cycle; both clouds and both stores must be equal. */
async function compareWithTwin(lab: EngineLab, twin: EngineLab): Promise<string[]> {
  const run = await runCycle(twin.ctx);
  const problems = checkRun(run).map((p) => `postgres twin: ${p}`);
  return [...problems, ...diffSnapshots(await snapshot(twin.cloud), await snapshot(lab.cloud)).map((d) => `clouds (postgres vs sqlite): ${d}`), ...diffStores(lab.ctx.db, twin.ctx.db)];
}

type Snapshot = Map<string, string>;

/** Every user and group by externalId, as comparable JSON (cloud ids replaced by externalIds). */
export async function snapshot(cloud: TestCloud): Promise<Snapshot> {
  const users = await cloud.all('Users');
  const groups = await cloud.all('Groups');
  const ext = new Map<string, string>();
  for (const r of [...users, ...groups]) ext.set(r.id, r.externalId ?? `(no externalId: ${r.id})`);
  const out: Snapshot = new Map();
  for (const u of users) {
    const { id: _id, meta: _meta, groups: memberOf, ...rest } = u;
    const g = ((memberOf ?? []) as { value: string; type?: string }[]).map((x) => `${x.type ?? ''}:${ext.get(x.value) ?? x.value}`).sort();
    out.set(`user ${u.externalId}`, JSON.stringify(sortKeys({ ...rest, groups: g })));
  }
  for (const g of groups) {
    const { id: _id, meta: _meta, members, ...rest } = g;
    const m = ((members ?? []) as { value: string; type?: string }[]).map((x) => `${x.type ?? ''}:${ext.get(x.value) ?? x.value}`).sort();
    out.set(`group ${g.externalId}`, JSON.stringify(sortKeys({ ...rest, members: m })));
  }
  return out;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

export function diffSnapshots(delta: Snapshot, full: Snapshot): string[] {
  const out: string[] = [];
  for (const [k, v] of full) {
    const d = delta.get(k);
    if (d === undefined) out.push(`missing in the delta cloud: ${k} ${v}`);
    else if (d !== v) out.push(`differs: ${k}\n  delta: ${d}\n  full:  ${v}`);
  }
  for (const [k, v] of delta) if (!full.has(k)) out.push(`only in the delta cloud: ${k} ${v}`);
  return out;
}
