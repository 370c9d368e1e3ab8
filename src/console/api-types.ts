/**
 * The typed API between the console pages (webui/*.js, checked by tsc through JSDoc imports of
 * these types) and the servers (src/console/plugin.ts, src/cloud/portal/plugin.ts). Type-only:
 * nothing here exists at run time.
 */
import type { EventRecord } from '../events/log.js';
import type { RunRecord } from '../engine/runs.js';
import type { HealthReport } from '../service/health.js';

export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** GET <prefix>/api/session and POST <prefix>/api/signin. */
export interface SessionInfo {
  user: string;
  /** Send it back as `x-csrf-token` on every POST. */
  csrf: string;
  role?: string;
}

export interface SignInRequest {
  username: string;
  password: string;
}

// ----------------------------------------------------------------------------------------------
// The sync console (/console)
// ----------------------------------------------------------------------------------------------

export interface DegradedWithFix {
  check: string;
  reason: string;
  code?: string;
  /** What to do, naming the command. */
  fix: string;
}

export interface ConnectorLastCycle {
  connector: string;
  step: string;
  status: string;
  adds: number;
  updates: number;
  deletes: number;
  unchanged: number;
  errors: number;
}

/** GET /console/api/overview */
export interface Overview {
  health: HealthReport;
  degraded: DegradedWithFix[];
  /** Deletions the threshold held in the last run (event 116), to approve from the console. */
  heldDeletions: { runId: number; deletes: number; threshold: number } | null;
  /** The connectors whose credential the console may update (the form's choices). */
  credentialNames: string[];
  lastRun: { id: number; status: string; startedAt: string; endedAt: string | null; steps: ConnectorLastCycle[] } | null;
}

/** GET /console/api/runs/:id: each error with the metaverse object it names, when known. */
export interface RunDetail extends Omit<RunRecord, 'errors'> {
  errors: (RunRecord['errors'][number] & { mvId: number | null })[];
}

/** GET /console/api/runs */
export interface RunList {
  runs: RunRecord[];
}

export type SearchOperator = 'eq' | 'sw' | 'pr';
/** mv: the metaverse; cs: the source connectors' connector spaces. */
export type SearchSpace = 'mv' | 'cs';

export interface SearchHit {
  /** The metaverse object (null: a connector-space object joined to none). */
  id: number | null;
  /** The connector (connector space only). */
  connector: string | null;
  anchor: string;
  /** The source DN (connector space only). */
  dn: string | null;
  objectType: string;
  display: string;
  deleted: boolean;
}

/** GET /console/api/search?space=mv|cs&attr=&op=eq|sw|pr&value=&after=&limit= */
export interface SearchResult {
  space: SearchSpace;
  objects: SearchHit[];
  /** Pass as `after` for the next page (or to search further); null on the last page. */
  next: string | null;
  /**
   * index: from the attribute index, plus the objects changed since the index was last brought up
   * to date, checked one by one; scan: every object checked one by one, in key order.
   */
  method: 'index' | 'scan';
  /** Objects checked one by one so far (this page and the ones before it), of how many. */
  scanned: number;
  total: number;
  /** The page stopped at its time budget before it was full: `next` searches further. */
  partial: boolean;
}

export type AttrMap = Record<string, unknown>;

/** GET /console/api/objects/:id: source entry -> connector-space object -> metaverse -> cloud. */
export interface Lineage {
  metaverse: {
    id: number;
    objectType: string;
    sourceAnchor: string;
    attrs: AttrMap;
    /** The connector each attribute came from (null: none of them holds the merged value now). */
    contributedBy: Record<string, string | null>;
    deleted: boolean;
    pendingExport: boolean;
    updatedAt: string;
  };
  connectorSpace: { connector: string; anchor: string; dn: string; objectType: string; pending: string | null; attrs: AttrMap }[];
  /** The cloud connector space: the resource id and the last export (its time and error). */
  cloud: { resourceId: string | null; objectType: string; lastError: string | null; updatedAt: string } | null;
  /** Password hash sync of the user, newest first (7 days). */
  passwords: { at: string; status: string; reason: string | null; source: string | null }[];
}

/** POST /console/api/objects/:id/trace: what `idsync sync --object DN` shows. */
export type ObjectTraceResult = import('../engine/single-object.js').ObjectTrace;

/** POST /console/api/credentials/:name {secret} */
export interface CredentialSaved {
  connector: string;
  saved: true;
  changedAt: string | null;
  /** The last cycle had failed: one was started with the new secret. */
  cycleStarted: boolean;
}

/** POST /console/api/approve-deletions {runId} */
export interface DeletionsApproved {
  accepted: true;
  runId: number;
  deletes: number;
}

/** POST /console/api/passwords/resync {user} or {all: true} */
export interface PasswordsResynced {
  queued: number;
}

/** POST /console/api/preview: the next cycle's export, attribute by attribute, nothing written. */
export interface PreviewResult {
  runId: number;
  status: string;
  plan: import('../engine/export.js').PlannedExport[];
}

/** GET /console/api/events?level=&id=&source=&since=&limit= (newest first); live: GET /console/api/events/stream?...&after=<lastSeq> (SSE) */
export interface EventList {
  events: EventRecord[];
  /** Follow from here with the stream. */
  lastSeq: number;
}

// ----------------------------------------------------------------------------------------------
// The cloud portal (/portal)
// ----------------------------------------------------------------------------------------------

export interface PortalUserRow {
  id: string;
  userName: string;
  displayName: string | null;
  active: boolean;
  externalId: string | null;
}

/** GET /portal/api/users?q= */
export interface PortalUserList {
  users: PortalUserRow[];
}

/** GET /portal/api/users/:id */
export interface PortalUser extends PortalUserRow {
  created: string;
  lastModified: string;
  groups: { id: string; displayName: string }[];
  /** The SCIM document without any password or hash. */
  attributes: AttrMap;
}

export interface PortalGroupRow {
  id: string;
  displayName: string;
  externalId: string | null;
  memberCount: number;
}

/** GET /portal/api/groups?q= */
export interface PortalGroupList {
  groups: PortalGroupRow[];
}

/** GET /portal/api/groups/:id */
export interface PortalGroup extends PortalGroupRow {
  members: { id: string; type: string; display: string }[];
}

export interface PortalAuditRow {
  id: number;
  at: string;
  type: string;
  actor: string | null;
  subject: string | null;
  ip: string | null;
  result: string;
  reason: string;
}

/** GET /portal/api/audit?type=&subject=&result= */
export interface PortalAuditList {
  records: PortalAuditRow[];
}

/** GET /portal/api/locked */
export interface PortalLockedList {
  locked: { name: string; ip: string; failures: number; lockedUntil: string }[];
}

/** GET /portal/api/sync-status */
export interface PortalSyncStatus {
  accounts: { name: string; kind: 'account' | 'client'; lastExport: string | null; lastPasswordBatch: string | null; silentHours: number | null; warning: boolean }[];
}

/** GET /portal/api/accounts: administrators and sync accounts with their roles (never a secret). */
export interface PortalAccounts {
  accounts: { username: string; role: string; createdAt: string; passwordChangedAt: string }[];
  clients: { clientId: string; role: string; createdAt: string }[];
}

/** GET /console/api/charts: the overview's charts over the last 7 days. */
export interface Charts {
  days: number;
  /** Every finished run of the period, oldest first. */
  cycles: { id: number; at: string; profile: string; status: string; seconds: number; exported: number }[];
  /** Event 651's delivered count, per UTC day. */
  passwordsDelivered: { day: string; delivered: number }[];
  /** From a password change queued to the cloud accepting it (the user can sign in with it), per UTC day. */
  changeToSignIn: { day: string; count: number; medianSeconds: number | null; p95Seconds: number | null }[];
}
