/**
 * SIGKILL trials (issue 9), shared by `npm run chaos` (bench/chaos.ts) and the CI round
 * (test/e2e/chaos.test.ts), so both run the same code.
 *
 * One world per round: a real OpenLDAP (samba schema: sambaNTPassword) as the source of truth, the
 * cloud directory as its own process (`idsync cloud serve`), and a configuration + data folder for
 * the `idsync` command line. Each trial changes the source (users added, deleted, renamed, moved
 * between groups, passwords changed), runs one process and SIGKILLs something at a random moment:
 *
 *   sync   `idsync sync` killed during its cycle; recovery: `idsync sync` again.
 *   serve  `idsync serve` killed while passwords change in flight (sambaNTPassword written in slapd,
 *          then a password change notification posted to the service); recovery: restart, wait
 *          for a successful cycle and an empty password outbox, stop with SIGTERM (exit 0).
 *   cloud  `idsync cloud serve` killed while `idsync sync` exports to it; recovery: restart the
 *          cloud on its data folder and port, `idsync sync` again.
 *
 * Then a full verification against slapd and the password model: every source user exactly once in
 * the cloud (by externalId and by userName), nothing the source deleted, attributes and group
 * members equal, meta.version changes whenever a resource changes (and only then is it allowed to),
 * every user signs in with their latest password and not with the one it replaced, no password
 * change left in idsync's outbox (but for a user not exported), and no password, NT hash or token
 * in any data file or captured output (test/helpers/secret-scan.ts).
 *
 * Everything random comes from one seed, so a failing trial can be replayed with --seed. Timing is
 * not (the machine's load decides where a kill lands), so a latest password that is refused explains
 * itself (bench/chaos-explain.ts): which password the cloud holds and since when, the outbox row,
 * status history, events and the trial's timeline.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir, cpus } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sqlite } from '../src/store/sqlite-driver.js';
import { Client } from 'ldapts';
import { request } from 'undici';
import { stringify } from 'yaml';
import { createSyncClient, fetchToken } from '../src/cloud/admin-api-client.js';
import { PCN_PATH } from '../src/passwords/handlers.js';
import { killOnExit } from '../test/helpers/children.js';
import { inParallel, sambaNtPassword } from '../test/helpers/passwords.js';
import { captured, idsync, setCredentials, signIn, spawnIdsync, stopProc, until, type Proc } from '../test/helpers/processes.js';
import { describeFindings, scanForSecrets, SecretSet } from '../test/helpers/secret-scan.js';
import { freePort, startSlapd, type Slapd } from '../test/helpers/slapd.js';
import { prng } from '../test/helpers/prng.js';
import { explainRefusedPassword, type PasswordChange } from './chaos-explain.js';

export const KINDS = ['sync', 'serve', 'cloud'] as const;
export type Kind = (typeof KINDS)[number];

export interface ChaosOptions {
  trials: number;
  seed: number;
  kinds: readonly Kind[];
  /** Users seeded before the first trial (default 40). */
  users?: number;
  /** Groups seeded (default 4). */
  groups?: number;
  /** The kind of each trial in order (default: picked at random from `kinds`). */
  sequence?: readonly Kind[];
  /** One line per event of interest (default: nothing). */
  log?: (line: string) => void;
}

export interface TrialResult {
  trial: number;
  kind: Kind;
  /** Milliseconds after the start of the killed phase. */
  killAtMs: number;
  /** Whether the killed process was still running (false: it had finished before the kill). */
  killedRunning: boolean;
  recoveryMs: number;
  /** Password change notifications the service accepted (202) and those lost to the kill. */
  pcns: { accepted: number; lost: number };
  users: number;
  groups: number;
  lost: string[];
  duplicated: string[];
  /** Every other difference found by the verification (stale objects, attributes, members, versions, sign-ins, secrets). */
  problems: string[];
  /**
   * Why, for a latest password that did not sign in: what the cloud and idsync held for that user
   * (bench/chaos-explain.ts), and the trial's timeline. Empty when nothing was refused.
   */
  explained: string[];
}

export interface ChaosReport {
  seed: number;
  kinds: readonly Kind[];
  trials: TrialResult[];
  lost: number;
  duplicated: number;
  failedTrials: number;
  durationMs: number;
  /** 1-minute load average at the start and the end, and the number of CPUs. */
  load: { start: number; end: number; cpus: number };
}

const BASE = 'dc=lab,dc=test';
const PEOPLE = `ou=people,${BASE}`;
const GROUPS = `ou=groups,${BASE}`;
const ADMIN = { username: 'admin', password: 'Chaos-admin-password-1' };
const CLIENT_ID = 'idsync-chaos';

export { prng };

interface ModelUser {
  uid: string;
  password: string;
  /** Passwords this user had before the current one, in this trial (each must fail). */
  replaced: string[];
  /** Imported by idsync already (a password change notification can name it). */
  known: boolean;
  permanent: boolean;
  /** Every password the user had, oldest first (the last is `password`): a failure names which one the cloud holds. */
  history: PasswordChange[];
}

// SCIM JSON read for verification.
interface ScimResource {
  id: string;
  externalId?: string;
  userName?: string;
  displayName?: string;
  title?: string;
  active?: boolean;
  members?: { value: string }[];
  meta?: { version?: string };
  [k: string]: unknown;
}

const dnOf = (uid: string): string => `uid=${uid},${PEOPLE}`;

/** Password changes in idsync's outbox that wait for anything but their user's export. */
function queuedChanges(file: string): { anchor: string; attempts: number; lastError: string | null; dueInMs: number }[] {
  if (!existsSync(file)) return [];
  const db = new Sqlite(file, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare("SELECT anchor, attempts, last_error, next_attempt_at FROM phs_users WHERE next_attempt_at IS NOT NULL AND (last_error IS NULL OR last_error <> 'TargetNotExported') ORDER BY anchor")
      .all() as { anchor: string; attempts: number; last_error: string | null; next_attempt_at: number }[];
    return rows.map((r) => ({ anchor: r.anchor, attempts: r.attempts, lastError: r.last_error, dueInMs: r.next_attempt_at - Date.now() }));
  } finally {
    db.close();
  }
}

/** A directory user's sign-in: the status and the OAuth error, if any (never the password). */
async function signInAnswer(cloudUrl: string, username: string, password: string): Promise<{ status: number; error?: string }> {
  const res = await request(`${cloudUrl}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username, password }).toString(),
  });
  const text = await res.body.text();
  if (res.statusCode === 200) return { status: 200 };
  try {
    const body = JSON.parse(text) as { error?: unknown; error_description?: unknown };
    return { status: res.statusCode, error: [body.error, body.error_description].filter((v) => typeof v === 'string').join(': ').slice(0, 200) };
  } catch {
    return { status: res.statusCode, error: text.slice(0, 200) };
  }
}
const sid = (n: number): string => `S-1-5-21-7-7-7-${1000 + n}`;

/** One round's servers, source of truth and password model (exported for the CI test's own checks). */
export class ChaosWorld {
  slapd!: Slapd;
  dir = mkdtempSync(path.join(tmpdir(), 'idsync-chaos-'));
  config = path.join(this.dir, 'idsync.yaml');
  cloudData = path.join(this.dir, 'cloud');
  cloudPort = 0;
  cloudUrl = '';
  cloud: Proc | undefined;
  syncSecret = '';
  agentToken = '';
  readonly users = new Map<string, ModelUser>();
  readonly groups = new Map<string, Set<string>>();
  readonly secrets = new SecretSet();
  private readonly secretSeen = new Set<string>();
  private next = 0;
  /** Counts of the trial running. */
  pcns = { accepted: 0, lost: 0 };
  /** The trial running (0: before the first), and what happened in it when (for a failure's explanation). */
  trial = 0;
  timeline: string[] = [];
  private adminToken = '';
  /** id → version and digest of the resource at the last verification. */
  private readonly versions = new Map<string, { version: string; digest: string; body: Record<string, unknown> }>();
  /** Rolling estimate of how long the killed phase of each kind takes, for picking the moment. */
  readonly estimateMs: Record<Kind, number> = { sync: 2000, serve: 3000, cloud: 2000 };

  constructor(
    readonly rng: () => number,
    readonly log: (line: string) => void,
  ) {}

  private int(n: number): number {
    return Math.floor(this.rng() * n);
  }
  private pick<T>(xs: readonly T[]): T | undefined {
    return xs.length ? xs[this.int(xs.length)] : undefined;
  }
  private newPassword(uid: string): string {
    return `Chaos-${uid}-${this.int(0xffffff).toString(16).padStart(6, '0')}!`;
  }
  /** Notes a moment of the trial (its timeline explains a failure). */
  mark(what: string): void {
    this.timeline.push(`${new Date().toISOString().slice(11, 23)} ${what}`);
  }

  private async remember(label: string, password: string): Promise<void> {
    if (this.secretSeen.has(password)) return;
    this.secretSeen.add(password);
    await this.secrets.password(label, password);
  }

  async start(userCount: number, groupCount: number): Promise<void> {
    const ldif: string[] = [];
    for (let i = 0; i < userCount; i++) {
      const uid = `u${this.next++}`;
      const password = this.newPassword(uid);
      const u: ModelUser = { uid, password, replaced: [], known: false, permanent: i < 2, history: [{ password, trial: 0, at: Date.now() }] };
      this.users.set(uid, u);
      await this.remember(uid, u.password);
      ldif.push(await this.userLdif(u));
    }
    for (let g = 0; g < groupCount; g++) {
      // Every group keeps u0 (never deleted): groupOfNames needs a member.
      const members = new Set(['u0', ...[...this.users.keys()].filter(() => this.rng() < 0.3)]);
      this.groups.set(`g${g}`, members);
      ldif.push([`dn: cn=g${g},${GROUPS}`, 'objectClass: groupOfNames', `cn: g${g}`, ...[...members].map((m) => `member: ${dnOf(m)}`), ''].join('\n'));
    }
    // The accesslog overlay lets delta imports see deletions (docs/delta-import.md).
    this.slapd = await startSlapd({ sambaSchema: true, accesslog: true, seedLdif: ldif.join('\n') });
    this.cloudPort = await freePort();
    this.cloudUrl = `http://127.0.0.1:${this.cloudPort}`;
    await this.startCloud();
    this.syncSecret = await createSyncClient(this.cloudUrl, ADMIN, CLIENT_ID);
    this.agentToken = `agent-${createHash('sha256').update(String(this.rng())).digest('hex').slice(0, 32)}`;
    this.secrets.token('agent token', this.agentToken).token('cloud sync secret', this.syncSecret).token('cloud admin password', ADMIN.password);
    writeFileSync(
      this.config,
      stringify({
        dataDir: './data',
        connectors: [{ name: 'ldap', type: 'ldap', url: this.slapd.url, bindDn: this.slapd.adminDn, baseDn: BASE, delta: { accesslogBase: 'cn=accesslog' } }],
        cloud: { url: this.cloudUrl, auth: { type: 'client_credentials', clientId: CLIENT_ID } },
        // The trials delete random users from a small directory: the percentage part of the default
        // deletion threshold ("500 or 10%") would stop a trial's recovery cycle. The trials are about
        // crash safety; the threshold has its own tests, and a count stays on.
        sync: { deletionThreshold: 500 },
      }),
    );
    await setCredentials(this.config, [
      ['ldap', this.slapd.adminPassword],
      ['cloud', this.syncSecret],
      ['agent', this.agentToken, ['--no-validate']],
    ]);
    const t0 = Date.now();
    const first = await idsync(['-c', this.config, 'sync']);
    if (first.code !== 0) throw new Error(`the first sync exited ${first.code}: ${first.out.slice(-2000)}`);
    this.estimateMs.sync = this.estimateMs.cloud = Math.max(500, Date.now() - t0);
    for (const u of this.users.values()) u.known = true;
    const v = await this.verify();
    if (v.lost.length + v.duplicated.length + v.problems.length > 0) throw new Error(`the world is wrong before any trial: ${JSON.stringify(v).slice(0, 2000)}`);
  }

  async close(): Promise<void> {
    await stopProc(this.cloud, 'SIGKILL');
    await this.slapd?.stop();
    if (process.env.IDSYNC_KEEP_TEST_DIRS !== '1') rmSync(this.dir, { recursive: true, force: true });
  }

  async startCloud(): Promise<void> {
    const p = spawnIdsync(['cloud', 'serve', '--data', this.cloudData, '--port', String(this.cloudPort), '--log-level', 'warn'], undefined, { IDSYNC_CLOUD_ADMIN_PASSWORD: ADMIN.password });
    killOnExit(p.child);
    this.cloud = p;
    await until(
      'the cloud to answer /healthz',
      async () => {
        if (p.child.exitCode !== null) throw new Error(`idsync cloud serve exited ${p.child.exitCode}: ${p.out.text.slice(-2000)}`);
        try {
          const res = await request(`${this.cloudUrl}/healthz`);
          await res.body.dump();
          return res.statusCode === 200;
        } catch {
          return false;
        }
      },
      30_000,
      50,
    );
    this.adminToken = '';
  }

  private async userLdif(u: ModelUser): Promise<string> {
    const n = Number(u.uid.slice(1));
    return [
      `dn: ${dnOf(u.uid)}`,
      'objectClass: inetOrgPerson',
      'objectClass: sambaSamAccount',
      `uid: ${u.uid}`,
      `cn: Chaos ${u.uid}`,
      `sn: ${u.uid}`,
      `mail: ${u.uid}@lab.test`,
      'title: Member',
      `sambaSID: ${sid(n)}`,
      `sambaNTPassword: ${await sambaNtPassword(u.password)}`,
      '',
    ].join('\n');
  }

  // -------------------------------------------------------------------------------------------
  // Changes to the source of truth
  // -------------------------------------------------------------------------------------------

  /** A random batch of changes, as steps to run in order (some of them while a process is killed). */
  planChanges(size: number, pcnUrl?: () => string | undefined): (() => Promise<void>)[] {
    const steps: (() => Promise<void>)[] = [];
    const live = () => [...this.users.values()];
    for (let k = 0; k < size; k++) {
      const r = this.rng();
      if (r < 0.15) {
        steps.push(() => this.addUser());
      } else if (r < 0.22) {
        steps.push(() => this.deleteUser());
      } else if (r < 0.45) {
        steps.push(() => this.renameUser(this.pick(live())));
      } else if (r < 0.8) {
        steps.push(() => this.changePassword(this.pick(live()), pcnUrl));
      } else {
        steps.push(() => this.changeMembership());
      }
    }
    return steps;
  }

  /** Changes in the source only, without any sync: for tests that the verification sees them. */
  async sourceOnly(change: 'password' | 'delete' | 'member-add' | 'member-remove', uid: string, group = 'g0'): Promise<void> {
    const u = this.users.get(uid);
    if (!u) throw new Error(`no user ${uid}`);
    if (change === 'password') await this.changePassword(u);
    else if (change === 'delete') {
      for (const [g, members] of this.groups) if (members.has(uid)) await this.memberOp(g, 'delete', uid);
      this.users.delete(uid);
      await this.slapd.modify(`dn: ${dnOf(uid)}\nchangetype: delete\n`);
    } else await this.memberOp(group, change === 'member-add' ? 'add' : 'delete', uid);
  }

  /** A user's anchor in the source (its entryUUID: the cloud externalId and the outbox key). */
  async sourceUuid(uid: string): Promise<string | undefined> {
    return (await this.readSource()).users.get(uid)?.uuid;
  }

  /** The cloud's SCIM API as its global administrator (for tests that damage the cloud on purpose). */
  async adminScim(method: 'POST' | 'DELETE' | 'GET', p: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    if (!this.adminToken) this.adminToken = await fetchToken(this.cloudUrl, { grant_type: 'password', ...ADMIN });
    const res = await request(`${this.cloudUrl}/scim/v2${p}`, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, 'content-type': 'application/scim+json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? (JSON.parse(text) as unknown) : undefined };
  }

  private async addUser(): Promise<void> {
    const uid = `u${this.next++}`;
    const password = this.newPassword(uid);
    const u: ModelUser = { uid, password, replaced: [], known: false, permanent: false, history: [] };
    await this.remember(uid, u.password);
    await this.slapd.add(await this.userLdif(u));
    u.history.push({ password, trial: this.trial, at: Date.now() });
    this.mark(`${uid} added`);
    this.users.set(uid, u);
    const g = this.pick([...this.groups.keys()]);
    if (g && this.rng() < 0.5) await this.memberOp(g, 'add', uid);
  }

  private async deleteUser(): Promise<void> {
    const u = this.pick([...this.users.values()].filter((x) => !x.permanent));
    if (!u || this.users.size < 10) return;
    for (const [g, members] of this.groups) if (members.has(u.uid)) await this.memberOp(g, 'delete', u.uid);
    // Gone from the model first: from now on the cloud may no longer have it.
    this.users.delete(u.uid);
    await this.slapd.modify(`dn: ${dnOf(u.uid)}\nchangetype: delete\n`);
    this.mark(`${u.uid} deleted`);
  }

  private async renameUser(u: ModelUser | undefined): Promise<void> {
    if (!u) return;
    const title = `Title ${this.int(1000)}`;
    await this.slapd.modify(`dn: ${dnOf(u.uid)}\nchangetype: modify\nreplace: title\ntitle: ${title}\n-\nreplace: cn\ncn: Chaos ${u.uid} ${this.int(1000)}\n`);
  }

  private async changePassword(u: ModelUser | undefined, pcnUrl?: () => string | undefined): Promise<void> {
    if (!u) return;
    const password = this.newPassword(u.uid);
    await this.remember(u.uid, password);
    // The directory first (as on a DC: the change is committed, then notified); the model follows at once.
    await this.slapd.modify(`dn: ${dnOf(u.uid)}\nchangetype: modify\nreplace: sambaNTPassword\nsambaNTPassword: ${await sambaNtPassword(password)}\n`);
    u.replaced.push(u.password);
    u.password = password;
    u.history.push({ password, trial: this.trial, at: Date.now() });
    this.mark(`${u.uid} password ${u.history.length}`);
    const url = pcnUrl?.();
    if (url && u.known) {
      // The service may be dead or die meanwhile: a lost notification must be made good by the import.
      try {
        const res = await request(`${url}${PCN_PATH}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${this.agentToken}` },
          body: JSON.stringify({ user: dnOf(u.uid), password }),
        });
        const text = await res.body.text();
        if (res.statusCode === 202) this.pcns.accepted++;
        else this.log(`  PCN for ${u.uid}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
        this.mark(`${u.uid} password ${u.history.length}: notification answered ${res.statusCode}`);
      } catch {
        this.pcns.lost++; // connection refused or reset by the kill
        this.mark(`${u.uid} password ${u.history.length}: notification cut off`);
      }
    }
  }

  private async changeMembership(): Promise<void> {
    const g = this.pick([...this.groups.keys()]);
    if (!g) return;
    const members = this.groups.get(g)!;
    const removable = [...members].filter((m) => m !== 'u0');
    if (removable.length && this.rng() < 0.4) await this.memberOp(g, 'delete', this.pick(removable)!);
    else {
      const candidate = this.pick([...this.users.keys()].filter((m) => !members.has(m)));
      if (candidate) await this.memberOp(g, 'add', candidate);
    }
  }

  private async memberOp(g: string, op: 'add' | 'delete', uid: string): Promise<void> {
    await this.slapd.modify(`dn: cn=${g},${GROUPS}\nchangetype: modify\n${op}: member\nmember: ${dnOf(uid)}\n`);
    if (op === 'add') this.groups.get(g)!.add(uid);
    else this.groups.get(g)!.delete(uid);
  }

  // -------------------------------------------------------------------------------------------
  // Verification
  // -------------------------------------------------------------------------------------------

  private async scimAll(type: 'Users' | 'Groups'): Promise<ScimResource[]> {
    const out: ScimResource[] = [];
    for (let start = 1; ; ) {
      const body = (await this.scim(`/${type}?startIndex=${start}&count=500`)).body as { Resources?: ScimResource[]; totalResults: number };
      const page = body.Resources ?? [];
      out.push(...page);
      start += page.length;
      if (page.length === 0 || out.length >= body.totalResults) return out;
    }
  }

  private async scim(p: string): Promise<{ status: number; etag: string | undefined; body: unknown }> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!this.adminToken) this.adminToken = await fetchToken(this.cloudUrl, { grant_type: 'password', ...ADMIN });
      const res = await request(`${this.cloudUrl}/scim/v2${p}`, { headers: { authorization: `Bearer ${this.adminToken}` } });
      const text = await res.body.text();
      if (res.statusCode === 401) {
        this.adminToken = '';
        continue;
      }
      if (res.statusCode !== 200) throw new Error(`GET ${p}: HTTP ${res.statusCode} ${text.slice(0, 300)}`);
      const etag = res.headers.etag;
      return { status: res.statusCode, etag: typeof etag === 'string' ? etag : undefined, body: JSON.parse(text) };
    }
    throw new Error(`GET ${p}: the admin token is refused`);
  }

  /** The source of truth as slapd holds it: users by uid (entryUUID, cn, mail, title) and groups (entryUUID, member uids). */
  private async readSource(): Promise<{ users: Map<string, { uuid: string; cn: string; mail: string; title: string }>; groups: Map<string, { uuid: string; members: string[] }> }> {
    const c: Client = await this.slapd.client();
    try {
      const users = new Map<string, { uuid: string; cn: string; mail: string; title: string }>();
      const ur = await c.search(PEOPLE, { scope: 'one', filter: '(objectClass=inetOrgPerson)', attributes: ['uid', 'cn', 'mail', 'title', 'entryUUID'] });
      for (const e of ur.searchEntries) users.set(String(e.uid), { uuid: String(e.entryUUID), cn: String(e.cn), mail: String(e.mail), title: String(e.title) });
      const groups = new Map<string, { uuid: string; members: string[] }>();
      const gr = await c.search(GROUPS, { scope: 'one', filter: '(objectClass=groupOfNames)', attributes: ['cn', 'member', 'entryUUID'] });
      for (const e of gr.searchEntries) {
        const members = (Array.isArray(e.member) ? e.member : [e.member]).map((m) => /^uid=([^,]+),/i.exec(String(m))?.[1] ?? String(m));
        groups.set(String(e.cn), { uuid: String(e.entryUUID), members });
      }
      return { users, groups };
    } finally {
      await c.unbind();
    }
  }

  async verify(): Promise<Pick<TrialResult, 'lost' | 'duplicated' | 'problems' | 'users' | 'groups' | 'explained'>> {
    const lost: string[] = [];
    const duplicated: string[] = [];
    const problems: string[] = [];
    const src = await this.readSource();

    // The harness's own model must agree with slapd, or the rest means nothing.
    const modelUids = [...this.users.keys()].sort();
    const srcUids = [...src.users.keys()].sort();
    if (JSON.stringify(modelUids) !== JSON.stringify(srcUids)) problems.push(`harness: model users ${modelUids.length} != slapd users ${srcUids.length}`);
    for (const [g, members] of this.groups) {
      if (JSON.stringify([...members].sort()) !== JSON.stringify([...(src.groups.get(g)?.members ?? [])].sort())) problems.push(`harness: model members of ${g} != slapd`);
    }

    const users = await this.scimAll('Users');
    const groups = await this.scimAll('Groups');
    const byExt = new Map<string, ScimResource[]>();
    const byName = new Map<string, number>();
    for (const u of users) {
      byExt.set(u.externalId ?? '', [...(byExt.get(u.externalId ?? '') ?? []), u]);
      const n = (u.userName ?? '').toLowerCase();
      byName.set(n, (byName.get(n) ?? 0) + 1);
    }
    for (const [n, c] of byName) if (c > 1) duplicated.push(`userName ${n} ×${c}`);
    const uidOfUuid = new Map([...src.users].map(([uid, s]) => [s.uuid, uid]));
    const cloudIdOfUid = new Map<string, string>();
    for (const [uid, s] of src.users) {
      const found = byExt.get(s.uuid) ?? [];
      if (found.length === 0) {
        lost.push(`user ${uid}`);
        continue;
      }
      if (found.length > 1) duplicated.push(`user ${uid} ×${found.length} (externalId)`);
      const cu = found[0]!;
      cloudIdOfUid.set(uid, cu.id);
      if (cu.userName !== s.mail) problems.push(`user ${uid}: userName ${cu.userName} != ${s.mail}`);
      if (cu.displayName !== s.cn) problems.push(`user ${uid}: displayName ${cu.displayName} != ${s.cn}`);
      if (cu.title !== s.title) problems.push(`user ${uid}: title ${cu.title} != ${s.title}`);
      if (cu.active === false) problems.push(`user ${uid}: inactive`);
    }
    for (const u of users) if (!uidOfUuid.has(u.externalId ?? '')) problems.push(`stale user ${u.userName} (deleted in the source, still in the cloud)`);

    const groupByExt = new Map<string, ScimResource[]>();
    for (const g of groups) groupByExt.set(g.externalId ?? '', [...(groupByExt.get(g.externalId ?? '') ?? []), g]);
    const srcGroupUuids = new Set([...src.groups.values()].map((g) => g.uuid));
    for (const [cn, s] of src.groups) {
      const found = groupByExt.get(s.uuid) ?? [];
      if (found.length === 0) {
        lost.push(`group ${cn}`);
        continue;
      }
      if (found.length > 1) duplicated.push(`group ${cn} ×${found.length}`);
      const cg = found[0]!;
      if (cg.displayName !== cn) problems.push(`group ${cn}: displayName ${cg.displayName}`);
      const values = (cg.members ?? []).map((m) => m.value);
      if (new Set(values).size !== values.length) duplicated.push(`group ${cn}: a member listed twice`);
      const expected = s.members.map((m) => cloudIdOfUid.get(m) ?? `(missing ${m})`).sort();
      const got = [...values].sort();
      if (JSON.stringify(expected) !== JSON.stringify(got)) {
        const missing = expected.filter((x) => !got.includes(x));
        const extra = got.filter((x) => !expected.includes(x));
        if (missing.length) lost.push(`group ${cn}: ${missing.length} member(s) missing`);
        if (extra.length) problems.push(`group ${cn}: ${extra.length} member(s) too many`);
      }
    }
    for (const g of groups) if (!srcGroupUuids.has(g.externalId ?? '')) problems.push(`stale group ${g.displayName}`);

    // meta.version: present, a weak ETag, the same as GET's ETag, and changed whenever the resource changed.
    const seenNow = new Set<string>();
    for (const r of [...users, ...groups]) {
      seenNow.add(r.id);
      const version = r.meta?.version;
      if (typeof version !== 'string' || !/^W\/".+"$/.test(version)) {
        problems.push(`${r.id}: meta.version ${String(version)}`);
        continue;
      }
      // `groups` of a user and `display` of a member are derived when read (another resource's
      // name): they may change without this resource's version. Everything stored must not.
      const { meta: _meta, groups: _groups, ...rest } = r;
      if (rest.members) rest.members = rest.members.map(({ value }) => ({ value }));
      const digest = createHash('sha256').update(JSON.stringify(rest)).digest('hex');
      const prev = this.versions.get(r.id);
      if (prev && prev.version === version && prev.digest !== digest) {
        const keys = [...new Set([...Object.keys(prev.body), ...Object.keys(rest)])].filter((k) => JSON.stringify(prev.body[k]) !== JSON.stringify(rest[k]));
        problems.push(`${r.userName ?? r.displayName}: ${keys.join(', ')} changed without a new meta.version`);
      }
      this.versions.set(r.id, { version, digest, body: rest });
    }
    for (const id of [...this.versions.keys()]) if (!seenNow.has(id)) this.versions.delete(id);
    for (const r of [this.pick(users), this.pick(groups)]) {
      if (!r) continue;
      const one = await this.scim(`/${r.userName === undefined ? 'Groups' : 'Users'}/${r.id}`);
      if (one.etag !== undefined && one.etag !== r.meta?.version) problems.push(`${r.id}: ETag ${one.etag} != meta.version ${r.meta?.version}`);
      if ((one.body as ScimResource).meta?.version !== r.meta?.version) problems.push(`${r.id}: GET meta.version differs from the list`);
    }

    // Sign-in: the latest password works; the ones it replaced do not.
    const failures: string[] = [];
    const refused = new Map<string, string>();
    await inParallel([...this.users.values()], 8, async (u) => {
      if (!cloudIdOfUid.has(u.uid)) return; // already counted as lost
      const answer = await signInAnswer(this.cloudUrl, `${u.uid}@lab.test`, u.password);
      if (answer.status !== 200) {
        failures.push(`${u.uid}: latest password refused`);
        refused.set(u.uid, `HTTP ${answer.status}${answer.error ? ` ${answer.error}` : ''}`);
      }
      const old = u.replaced.at(-1);
      if (old !== undefined && (await signIn(this.cloudUrl, `${u.uid}@lab.test`, old)) === 200) failures.push(`${u.uid}: a replaced password still works`);
    });
    lost.push(...failures.filter((f) => f.includes('refused')).map((f) => `password of ${f}`));
    problems.push(...failures.filter((f) => !f.includes('refused')));
    // A refused latest password explains itself: what each side held for the user, and when things happened.
    const explained: string[] = [];
    for (const [uid, answer] of [...refused].sort()) {
      const u = this.users.get(uid)!;
      explained.push(
        ...(await explainRefusedPassword({
          uid,
          userName: `${uid}@lab.test`,
          anchor: src.users.get(uid)!.uuid,
          history: u.history,
          idsyncDb: path.join(this.dir, 'data', 'idsync.db'),
          cloudDb: path.join(this.cloudData, 'cloud.db'),
          answer,
        })),
      );
    }
    if (explained.length) explained.push(`timeline of trial ${this.trial}:`, ...this.timeline.map((t) => `  ${t}`));
    for (const u of this.users.values()) {
      u.replaced = [];
      u.known = true;
    }

    // A recovery that succeeded leaves no password change waiting for the cloud (only ones waiting
    // for their user's export, e.g. of a user deleted meanwhile): one that waits is not delivered.
    const waiting = queuedChanges(path.join(this.dir, 'data', 'idsync.db'));
    if (waiting.length) {
      const who = waiting.map((w) => `${uidOfUuid.get(w.anchor) ?? w.anchor}: ${w.attempts} attempt(s), last error ${w.lastError ?? '-'}, due in ${w.dueInMs} ms`);
      problems.push(`outbox: ${waiting.length} password change(s) still queued after the recovery (${who.join('; ')})`);
    }

    // No secret anywhere: the configuration folder (idsync.db, -wal, -shm, logs), the cloud's data, every output.
    const scan = scanForSecrets(this.secrets, { dirs: [this.dir], texts: captured });
    if (scan.findings.length) problems.push(`secrets found:\n${describeFindings(scan.findings)}`);

    return { lost, duplicated, problems, users: users.length, groups: groups.length, explained };
  }

  // -------------------------------------------------------------------------------------------
  // Trials
  // -------------------------------------------------------------------------------------------

  /** Waits up to ms for the process to exit; true when it did. */
  private async exitsWithin(p: Proc, ms: number): Promise<boolean> {
    // Not ref'd: a 120 s wait that lost the race must not hold the round's exit for 2 minutes.
    return Promise.race([p.exited.then(() => true), sleep(ms, undefined, { ref: false }).then(() => false)]);
  }

  /** Kills p with SIGKILL at a random moment within the estimate; returns when and whether it was still running. */
  private async killAtRandom(p: Proc, estimateMs: number): Promise<{ killAtMs: number; killedRunning: boolean }> {
    const killAtMs = Math.round(this.rng() * estimateMs * 1.2);
    const exited = await this.exitsWithin(p, killAtMs);
    if (exited) return { killAtMs, killedRunning: false };
    p.child.kill('SIGKILL');
    await p.exited;
    return { killAtMs, killedRunning: true };
  }

  /** `idsync sync` until it succeeds (a few tries: a run right after a crash may meet a stale lock, which must clear). */
  private async syncUntilSuccess(): Promise<void> {
    let last = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const t0 = Date.now();
      this.mark(`recovery: idsync sync (run ${attempt + 1})`);
      const r = await idsync(['-c', this.config, 'sync']);
      this.mark(`recovery: idsync sync exited ${r.code}`);
      if (r.code === 0) {
        this.estimateMs.sync = Math.round((this.estimateMs.sync + (Date.now() - t0)) / 2);
        if (attempt > 0) this.log(`  recovery sync needed ${attempt + 1} runs; before: ${last}`);
        return;
      }
      last = `exit ${r.code}: ${r.out.slice(-600)}`;
    }
    throw new Error(`recovery: idsync sync failed 3 times; last ${last}`);
  }

  async trialSync(): Promise<{ killAtMs: number; killedRunning: boolean }> {
    for (const step of this.planChanges(4 + this.int(8))) await step();
    this.mark('idsync sync started');
    const p = spawnIdsync(['-c', this.config, 'sync']);
    const k = await this.killAtRandom(p, this.estimateMs.sync);
    this.mark(k.killedRunning ? `idsync sync killed (SIGKILL) at ${k.killAtMs} ms` : `idsync sync had exited ${p.child.exitCode} before the kill`);
    await this.syncUntilSuccess();
    return k;
  }

  async trialCloud(): Promise<{ killAtMs: number; killedRunning: boolean }> {
    for (const step of this.planChanges(8 + this.int(12))) await step();
    this.mark('idsync sync started');
    const sync = spawnIdsync(['-c', this.config, 'sync']);
    const killAtMs = Math.round(this.rng() * this.estimateMs.cloud * 1.2);
    const syncFinished = await this.exitsWithin(sync, killAtMs);
    if (this.cloud!.child.exitCode !== null) throw new Error(`the cloud exited by itself: ${this.cloud!.out.text.slice(-1000)}`);
    this.cloud!.child.kill('SIGKILL');
    await this.cloud!.exited;
    this.mark(`cloud killed (SIGKILL) at ${killAtMs} ms${syncFinished ? `, after idsync sync exited ${sync.child.exitCode}` : ', idsync sync running'}`);
    // The sync meets a dead cloud: it may retry, fail, or have finished; it must not hang.
    if (!(await this.exitsWithin(sync, 120_000))) throw new Error('idsync sync hung with the cloud gone');
    if (!syncFinished) this.mark(`idsync sync exited ${sync.child.exitCode}`);
    const k2 = { killAtMs, killedRunning: !syncFinished };
    await this.startCloud();
    this.mark('cloud restarted (answers /healthz)');
    await this.syncUntilSuccess();
    return k2;
  }

  async trialServe(): Promise<{ killAtMs: number; killedRunning: boolean }> {
    this.mark('idsync serve started');
    const serve = spawnIdsync(['-c', this.config, 'serve', '--port', '0', '--interval', '1s', '--log-level', 'warn']);
    killOnExit(serve.child);
    const url = await until('serve to listen', () => /listening on (\S+)/.exec(serve.out.text)?.[1], 30_000);
    let alive = true;
    void serve.exited.then(() => (alive = false));
    const steps = this.planChanges(6 + this.int(10), () => (alive ? url : undefined));
    // The changes run while the service works; the kill comes at a random moment among them.
    const t0 = Date.now();
    const changes = (async () => {
      for (const step of steps) {
        await step();
        await sleep(this.int(150));
      }
    })();
    const k = await this.killAtRandom(serve, this.estimateMs.serve);
    this.mark(`idsync serve killed (SIGKILL) at ${k.killAtMs} ms`);
    await changes;
    this.estimateMs.serve = Math.round((this.estimateMs.serve + (Date.now() - t0)) / 2);
    if (!k.killedRunning) throw new Error(`idsync serve exited by itself: ${serve.out.text.slice(-1000)}`);

    // Recovery: restart, wait for a cycle that started after the restart to succeed and the outbox to drain.
    const restartedAt = new Date().toISOString();
    this.mark('idsync serve restarted');
    const again = spawnIdsync(['-c', this.config, 'serve', '--port', '0', '--interval', '1s', '--log-level', 'warn']);
    killOnExit(again.child);
    const url2 = await until('serve to listen again', () => /listening on (\S+)/.exec(again.out.text)?.[1], 30_000);
    await until(
      'a successful cycle after the restart and an empty outbox',
      async () => {
        const res = await request(`${url2}/status`);
        const s = (await res.body.json()) as { cycle: { last: { status: string; startedAt: string } | null }; passwords: { outboxDepth: number } };
        return s.cycle.last !== null && s.cycle.last.status === 'success' && s.cycle.last.startedAt > restartedAt && s.passwords.outboxDepth === 0;
      },
      120_000,
      200,
    );
    this.mark('a cycle after the restart succeeded and the outbox is empty');
    const code = await stopProc(again, 'SIGTERM');
    if (code !== 0) throw new Error(`idsync serve did not stop cleanly on SIGTERM (exit ${code}): ${again.out.text.slice(-1000)}`);
    return k;
  }
}

/** Runs a round of trials; never throws for a failed trial (it is in the report), only for a broken harness. */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => undefined);
  const rng = prng(o.seed);
  const world = new ChaosWorld(rng, log);
  const t0 = Date.now();
  const loadStart = loadavg()[0]!;
  const trials: TrialResult[] = [];
  try {
    await world.start(o.users ?? 40, o.groups ?? 4);
    log(`world ready: ${world.users.size} users, ${world.groups.size} groups; first sync ${world.estimateMs.sync} ms`);
    for (let n = 1; n <= o.trials; n++) {
      const random = o.kinds[Math.floor(rng() * o.kinds.length)]!;
      const kind = o.sequence?.[n - 1] ?? random;
      const started = Date.now();
      let kill = { killAtMs: 0, killedRunning: false };
      let result: TrialResult;
      world.pcns = { accepted: 0, lost: 0 };
      world.trial = n;
      world.timeline = [];
      try {
        kill = kind === 'sync' ? await world.trialSync() : kind === 'serve' ? await world.trialServe() : await world.trialCloud();
        const recoveryMs = Date.now() - started;
        const v = await world.verify();
        result = { trial: n, kind, ...kill, recoveryMs, pcns: world.pcns, ...v };
      } catch (err) {
        result = {
          trial: n,
          kind,
          ...kill,
          recoveryMs: Date.now() - started,
          pcns: world.pcns,
          users: 0,
          groups: 0,
          lost: [],
          duplicated: [],
          problems: [`trial failed: ${(err as Error).message}`],
          explained: [],
        };
        // The next trial needs a cloud to talk to.
        if (world.cloud?.child.exitCode !== null || world.cloud.child.signalCode !== null) await world.startCloud().catch(() => undefined);
      }
      trials.push(result);
      const ok = result.lost.length + result.duplicated.length + result.problems.length === 0;
      log(
        `trial ${String(n).padStart(3)} ${kind.padEnd(5)} kill at ${String(result.killAtMs).padStart(5)} ms${result.killedRunning ? '' : ' (had finished)'}  ` +
          `${result.users} users ${result.groups} groups${kind === 'serve' ? `  PCNs ${result.pcns.accepted} accepted, ${result.pcns.lost} lost to the kill` : ''}  ${ok ? 'ok' : 'FAILED'}  ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
      if (!ok) {
        for (const line of [...result.lost.map((l) => `lost: ${l}`), ...result.duplicated.map((d) => `duplicated: ${d}`), ...result.problems]) log(`    ${line}`);
        for (const line of result.explained) log(`      ${line}`);
      }
    }
  } finally {
    await world.close();
  }
  return {
    seed: o.seed,
    kinds: o.kinds,
    trials,
    lost: trials.reduce((s, t) => s + t.lost.length, 0),
    duplicated: trials.reduce((s, t) => s + t.duplicated.length, 0),
    failedTrials: trials.filter((t) => t.lost.length + t.duplicated.length + t.problems.length > 0).length,
    durationMs: Date.now() - t0,
    load: { start: loadStart, end: loadavg()[0]!, cpus: cpus().length },
  };
}
