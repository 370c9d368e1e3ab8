/**
 * The event catalog: every event idsync writes, in ONE place. To add an event, add an entry here
 * (pick a free ID in its source's range, see docs/events.md), then run
 * `node --import tsx scripts/gen-events-doc.ts` to regenerate docs/events.md (a test fails until you do).
 *
 * IDs below 1000 and 6900 are the incumbent's (Entra Connect Sync / Azure AD Sync, source
 * "Directory Synchronization"), kept with the same meanings so administrators' runbooks and
 * monitoring rules carry over (DESIGN.md §1 and §4). Everything else is numbered by source:
 *
 *   6001–6099  idsync Sync Engine   sync cycles, run profiles, imports
 *   6100–6199  idsync Service       daemon lifecycle, configuration, health, queues
 *   6200–6299  idsync Credentials   the credential store: changes, validation, tests
 *   6300–6399  idsync Sync Engine   connectors: reachability, bind, TLS, objects refused by a target
 *   6400–6429  idsync Password Sync password hashes replicated from DCs over MS-DRSR (`source: drs`);
 *                                   its failures are the incumbent's 611
 *   6550–6569  idsync Service       high availability: the leader lease, takeover, fencing (docs/ha.md)
 *   6580–6589  idsync Sync Engine   connector identity: a connector the configuration no longer names,
 *                                   `idsync connectors rename` and `forget`
 *
 * `message` and `resolution` are templates: `{name}` is replaced by the event's detail `name`
 * (after secret scrubbing; a missing detail leaves the placeholder as written). Messages say what
 * happened in plain words; resolutions say what the administrator should do, naming the command.
 * Never put secrets in details: they are scrubbed anyway (see log.ts), but pass identifiers only.
 */

export const EVENT_SOURCES = ['Directory Synchronization', 'idsync Sync Engine', 'idsync Service', 'idsync Credentials', 'idsync Password Sync'] as const;
export type EventSource = (typeof EVENT_SOURCES)[number];

export const EVENT_LEVELS = ['Error', 'Warning', 'Information'] as const;
export type EventLevel = (typeof EVENT_LEVELS)[number];

export interface EventDefinition {
  id: number;
  /** Symbolic name, UPPER_SNAKE_CASE, unique. */
  name: string;
  source: EventSource;
  level: EventLevel;
  /** What happened; `{placeholders}` are filled from the details. */
  message: string;
  /** What the administrator should do ("No action needed." for routine Information events). */
  resolution: string;
}

const NO_ACTION = 'No action needed.';

/** Checks each entry's shape at compile time while keeping the literal keys for `EVENTS.NAME`. */
function defineCatalog<const T extends Record<string, Omit<EventDefinition, 'name'>>>(
  entries: T,
): { readonly [K in keyof T]: EventDefinition & { readonly name: K } } {
  const out: Record<string, EventDefinition> = {};
  for (const [name, def] of Object.entries(entries)) out[name] = Object.freeze({ ...def, name });
  return Object.freeze(out) as { readonly [K in keyof T]: EventDefinition & { readonly name: K } };
}

export const EVENTS = defineCatalog({
  // ---------------------------------------------------------------------------------------------
  // The incumbent's IDs (source "Directory Synchronization"): same numbers, same meanings.
  // ---------------------------------------------------------------------------------------------
  AUTH_USER_OR_PASSWORD_INCORRECT: {
    id: 0,
    source: 'Directory Synchronization',
    level: 'Error',
    message: 'The user name or password is incorrect: connector {connector} could not sign in to its directory.',
    resolution:
      'Update the credential with `idsync credentials set {connector}`: it is tested against the directory before it is saved, ' +
      'and every component uses it from its next call, so no restart is needed. Check also that the account is not locked, disabled or expired.',
  },
  CLOUD_ACCESS_DENIED: {
    id: 115,
    source: 'Directory Synchronization',
    level: 'Error',
    message: 'Access to the cloud directory has been denied: {error}',
    resolution:
      'The cloud directory refused the credential of the sync service. Set the current one with `idsync credentials set cloud` ' +
      '(or re-run `idsync configure`); it is validated before it is saved and used from the next call, no restart needed. ' +
      'Password changes queued meanwhile are delivered once it works. The refused credential is not presented again until it changes ' +
      '(it is re-checked every `cloud.refusedCredentialRecheck`, 15 minutes by default), so it cannot lock the account out.',
  },
  DELETION_THRESHOLD_EXCEEDED: {
    id: 116,
    source: 'Directory Synchronization',
    level: 'Error',
    message:
      'The export to {connector} would delete {deletes} objects, more than the deletion threshold of {threshold}; the export was stopped and nothing was deleted.',
    resolution:
      'Review the deletions with `idsync sync --preview`. If they are intended, run `idsync sync --allow-deletes` once; ' +
      'otherwise fix the scoping filter or the source change that removed the objects from scope.',
  },
  PHS_DOMAIN_ERROR: {
    id: 611,
    source: 'Directory Synchronization',
    level: 'Error',
    message: 'Password hash synchronization failed for connector {connector}: {error}',
    resolution:
      'Fix the cause named in the error; when it is a sign-in failure, update the credential with `idsync credentials set {connector}` ' +
      '(or `idsync credentials set cloud` for the cloud side), no restart needed. Password changes wait in the queue and are delivered ' +
      'at the next poll; `idsync passwords status` shows what is pending.',
  },
  PHS_PAUSED_UNTIL_FULL_SYNC: {
    id: 613,
    source: 'Directory Synchronization',
    level: 'Warning',
    message: 'Password hash synchronization for connector {connector} is paused until a full directory synchronization completes.',
    resolution:
      'Run `idsync sync --full` (or wait for the scheduled full cycle); password hash synchronization resumes by itself when it completes.',
  },
  PHS_BATCH_START: {
    id: 650,
    source: 'Directory Synchronization',
    level: 'Information',
    message: 'Password hash synchronization started a batch of {count} password change(s) for connector {connector}.',
    resolution: NO_ACTION,
  },
  PHS_BATCH_END: {
    id: 651,
    source: 'Directory Synchronization',
    level: 'Information',
    message: 'Password hash synchronization finished a batch for connector {connector}: {delivered} delivered, {failed} failed.',
    resolution: 'No action needed when nothing failed; failed changes stay queued and are retried, and event 652 or 657 names the cause.',
  },
  PHS_BATCH_ERROR: {
    id: 652,
    source: 'Directory Synchronization',
    level: 'Error',
    message: 'A password hash synchronization batch for connector {connector} failed: {error}',
    resolution:
      'The changes stay queued and are retried at the next poll. Fix the cause named in the error: for "access denied" or ' +
      '"user name or password is incorrect", set the cloud credential with `idsync credentials set cloud` (no restart needed). ' +
      '`idsync passwords status` shows the queue.',
  },
  PHS_PING_START: {
    id: 653,
    source: 'Directory Synchronization',
    level: 'Information',
    message: 'Password hash synchronization is checking that the cloud directory accepts password changes (ping).',
    resolution: NO_ACTION,
  },
  PHS_HEARTBEAT: {
    id: 654,
    source: 'Directory Synchronization',
    level: 'Information',
    message: 'Password hash synchronization is running: the cloud directory answered the ping (heartbeat).',
    resolution:
      'No action needed. This event is written at least every 30 minutes while password hash synchronization runs; ' +
      'if none was written in the last 3 hours, run `idsync doctor`.',
  },
  PHS_PING_ERROR: {
    id: 655,
    source: 'Directory Synchronization',
    level: 'Error',
    message: 'Password hash synchronization could not ping the cloud directory: {error}',
    resolution:
      'When the error is "The user name or password is incorrect" or "access denied", set the cloud credential with ' +
      '`idsync credentials set cloud` (validated before it is saved, used from the next call, no restart needed). ' +
      'When the cloud is unreachable, check the network path and `cloud.url`. Queued password changes are delivered once the ping succeeds.',
  },
  PHS_CHANGE_REQUEST: {
    id: 656,
    source: 'Directory Synchronization',
    level: 'Information',
    message: 'Password change request for {anchor} ({dn}).',
    resolution: NO_ACTION,
  },
  PHS_CHANGE_RESULT: {
    id: 657,
    source: 'Directory Synchronization',
    level: 'Information',
    message: 'Password change result for {anchor} ({dn}): {result}.',
    resolution:
      'No action needed when the result is Success. Otherwise the change stays queued and is retried; a 652 or 611 event names the cause, ' +
      'and `idsync passwords status` shows the user.',
  },
  PCN_ERROR: {
    id: 6900,
    source: 'Directory Synchronization',
    level: 'Error',
    message: 'The server encountered an unexpected error while processing a password change notification: {error}',
    resolution:
      'When the error names a sign-in failure, set the cloud credential with `idsync credentials set cloud` (no restart needed); ' +
      'the change waits in the durable queue and is delivered once the credential works. Otherwise run `idsync doctor` and check ' +
      '`idsync passwords status` for the user.',
  },

  // ---------------------------------------------------------------------------------------------
  // 6001–6099 idsync Sync Engine: sync cycles and run profiles
  // ---------------------------------------------------------------------------------------------
  SYNC_CYCLE_STARTED: {
    id: 6001,
    source: 'idsync Sync Engine',
    level: 'Information',
    message: 'Sync cycle {runId} started ({profile}).',
    resolution: NO_ACTION,
  },
  SYNC_CYCLE_COMPLETED: {
    id: 6002,
    source: 'idsync Sync Engine',
    level: 'Information',
    message: 'Sync cycle {runId} completed: {adds} added, {updates} updated, {deletes} deleted in the cloud directory.',
    resolution: NO_ACTION,
  },
  SYNC_CYCLE_COMPLETED_WITH_ERRORS: {
    id: 6003,
    source: 'idsync Sync Engine',
    level: 'Warning',
    message: 'Sync cycle {runId} completed with {errors} object error(s).',
    resolution:
      'Run `idsync runs {runId}` to see each failing object and its error, then fix the object in its source directory or the rule ' +
      'that produced the value. The objects are retried at the next cycle.',
  },
  SYNC_CYCLE_FAILED: {
    id: 6004,
    source: 'idsync Sync Engine',
    level: 'Error',
    message: 'Sync cycle {runId} failed during {step} on connector {connector}: {error}',
    resolution:
      'Read the error and its fix with `idsync runs {runId}`, run `idsync doctor` to check connectors and credentials, ' +
      'then retry with `idsync sync`. Nothing is lost: the next cycle resumes from the last saved watermark.',
  },
  IMPORT_FELL_BACK_TO_FULL: {
    id: 6005,
    source: 'idsync Sync Engine',
    level: 'Warning',
    message: 'Delta import on connector {connector} could not use its saved watermark ({reason}); a full import was run instead.',
    resolution:
      'If this happens every cycle, the directory keeps its change history for less time than the sync interval: increase its ' +
      'retention (AD: tombstone lifetime; OpenLDAP: accesslog/syncprov purge settings) or run cycles more often. ' +
      'Once after a restore or a long outage, it is expected.',
  },
  CONTROL_CHARACTERS_STRIPPED: {
    id: 6006,
    source: 'idsync Sync Engine',
    level: 'Warning',
    message:
      'Connector {connector}: control characters (NUL and other C0 controls) were removed from {values} attribute value(s) of {objects} object(s) before staging; the first was attribute {attribute} of {dn}.',
    resolution:
      'The source directory holds values with invisible control characters, which the cloud and most programs cannot use. ' +
      'Fix the values at the source (tab, line feed and carriage return are kept); until then idsync exports them without the control characters. ' +
      'See docs/sync-rules.md, "Values idsync cleans".',
  },
  SCHEDULED_FULL_IMPORT: {
    id: 6020,
    source: 'idsync Sync Engine',
    level: 'Information',
    message: 'Connector {connector} ran its scheduled full import ({reason}): a delta import cannot see deletions in this directory.',
    resolution:
      'No action needed. Deletions in this directory reach the cloud only at these full imports (`delta.fullImportInterval`, default daily). ' +
      'To see them at every cycle, enable the accesslog overlay on the server and set `delta.accesslogBase` (docs/delta-import.md).',
  },
  EXPORT_LEFT_PENDING: {
    id: 6021,
    source: 'idsync Sync Engine',
    level: 'Warning',
    message: 'Sync cycle {runId} left {count} object(s) unexported in the cloud directory; they are retried at the next cycle.',
    resolution:
      'Run `idsync runs {runId}` to see why each object was not exported (a conflict, a rejected value, an unreachable cloud), fix it ' +
      'in the source directory or the cloud, and the next cycle exports it.',
  },

  // ---------------------------------------------------------------------------------------------
  // 6100–6199 idsync Service: lifecycle, configuration, health, queues
  // ---------------------------------------------------------------------------------------------
  SERVICE_STARTED: {
    id: 6101,
    source: 'idsync Service',
    level: 'Information',
    message: 'The idsync service started (version {version}, process {pid}).',
    resolution: NO_ACTION,
  },
  SERVICE_STOPPING: {
    id: 6102,
    source: 'idsync Service',
    level: 'Information',
    message: 'The idsync service is stopping ({reason}); the current step finishes and its state is saved.',
    resolution: NO_ACTION,
  },
  SERVICE_STOPPED: {
    id: 6103,
    source: 'idsync Service',
    level: 'Information',
    message: 'The idsync service stopped.',
    resolution: 'No action needed if the stop was intended; otherwise start it again with `idsync service start`.',
  },
  CONFIGURATION_RELOADED: {
    id: 6104,
    source: 'idsync Service',
    level: 'Information',
    message: 'The configuration was reloaded from {file}.',
    resolution: NO_ACTION,
  },
  CONFIGURATION_RELOAD_FAILED: {
    id: 6105,
    source: 'idsync Service',
    level: 'Error',
    message: 'The configuration in {file} was not reloaded: {error}. The previous configuration stays in effect.',
    resolution:
      'Fix the key and line named in the error (docs/configuration.md describes every key), then reload again. ' +
      'The service keeps running with the previous configuration meanwhile.',
  },
  HEALTH_DEGRADED: {
    id: 6110,
    source: 'idsync Service',
    level: 'Warning',
    message: 'Health is degraded: {check} is failing ({reason}).',
    resolution:
      'Run `idsync doctor`: it names the failing check and the command that fixes it. ' +
      'Health returns to OK by itself once the cause is fixed (event 6111).',
  },
  HEALTH_RECOVERED: {
    id: 6111,
    source: 'idsync Service',
    level: 'Information',
    message: 'Health recovered: {check} is OK again.',
    resolution: NO_ACTION,
  },
  CLOUD_UNAVAILABLE: {
    id: 6112,
    source: 'idsync Service',
    level: 'Warning',
    message: 'The cloud directory is unavailable: {error}. Nothing was refused; work waits and is retried.',
    resolution:
      'No credential change is needed: the cloud answered "busy" or "down" (HTTP 429 or 5xx) or could not be reached. ' +
      'idsync retries by itself, waiting as long as the cloud asks (Retry-After); queued password changes are delivered once it answers, ' +
      'and event 6111 says so. If this lasts, check the cloud directory\'s status and the network path to `cloud.url`.',
  },
  CLOUD_ACCOUNT_LOCKED: {
    id: 6113,
    source: 'idsync Service',
    level: 'Error',
    message: 'The cloud account is locked for {seconds} s; the password was not checked ({account}).',
    resolution:
      'Wait until the lock ends: idsync does not present the password before then, and retyping it sooner cannot help. ' +
      'The lock comes from earlier wrong attempts; the cloud\'s audit log shows where they came from. If the password was also changed, ' +
      'set the new one with `idsync credentials set cloud` once the lock has ended.',
  },
  PASSWORD_OUTBOX_BACKLOG_HIGH: {
    id: 6120,
    source: 'idsync Service',
    level: 'Warning',
    message: '{pending} password change(s) are waiting for delivery to the cloud directory; the oldest was queued at {oldest}.',
    resolution:
      'The changes are not lost: they are delivered in order once the cloud accepts them. Look for events 115, 0, 652 or 655 ' +
      'just before this one and fix their cause (usually `idsync credentials set cloud`); `idsync passwords status` shows the queue.',
  },

  // 6150–6179 idsync Service: the sync console (every sign-in and action, with who did it)
  CONSOLE_SIGNED_IN: {
    id: 6150,
    source: 'idsync Service',
    level: 'Information',
    message: 'Console user {user} signed in from {ip}.',
    resolution: NO_ACTION,
  },
  CONSOLE_SIGNIN_FAILED: {
    id: 6151,
    source: 'idsync Service',
    level: 'Warning',
    message: 'A sign-in to the console as {user} from {ip} failed.',
    resolution:
      'If this was not you, someone is guessing the console password: keep the service on loopback or behind TLS, and set a new ' +
      'password with `idsync console set-password`. Repeated failures are slowed down.',
  },
  CONSOLE_SIGNED_OUT: {
    id: 6152,
    source: 'idsync Service',
    level: 'Information',
    message: 'Console user {user} signed out.',
    resolution: NO_ACTION,
  },
  CONSOLE_CYCLE_REQUESTED: {
    id: 6153,
    source: 'idsync Service',
    level: 'Information',
    message: 'Console user {user} started a sync cycle; its outcome is in the run history.',
    resolution: NO_ACTION,
  },
  CONSOLE_REQUEST_REFUSED: {
    id: 6154,
    source: 'idsync Service',
    level: 'Warning',
    message: 'The console refused a state change from {ip}: {reason}.',
    resolution:
      'A page from another site tried to act in the console (cross-site request forgery), or a page was left open across a restart: ' +
      'reload the console. If it repeats, check which site or tool sends requests from the address in this event, and block it.',
  },
  CONSOLE_ACCOUNT_SET: {
    id: 6155,
    source: 'idsync Service',
    level: 'Information',
    message: 'The console account {user} was set; its sessions were ended.',
    resolution: NO_ACTION,
  },
  CONSOLE_DELETIONS_APPROVED: {
    id: 6156,
    source: 'idsync Service',
    level: 'Warning',
    message:
      'Console user {user} approved the {deletes} deletion(s) that the deletion threshold ({threshold}) held in run {runId}, at {at}; a cycle with deletions allowed was started.',
    resolution:
      'Check that the deletions were intended (the held run\'s preview in the console, or `idsync sync --preview`, listed them). ' +
      'If they were not, restore the objects in the source directory: the next cycle exports them again.',
  },
  CONSOLE_CREDENTIAL_SUBMITTED: {
    id: 6157,
    source: 'idsync Service',
    level: 'Information',
    message: 'Console user {user} submitted a new credential for connector {connector}: {result}.',
    resolution: 'No action needed when it was saved. When it was refused, events 6202 says why; the working credential was kept.',
  },
  CONSOLE_OBJECT_TRACED: {
    id: 6158,
    source: 'idsync Service',
    level: 'Information',
    message: 'Console user {user} traced {dn} through import, sync and export (as `idsync sync --object`); run {runId}.',
    resolution: NO_ACTION,
  },
  CONSOLE_PASSWORDS_RESYNC: {
    id: 6159,
    source: 'idsync Service',
    level: 'Information',
    message: 'Console user {user} started a full password sync for {target}: {queued} user(s) queued.',
    resolution: NO_ACTION,
  },
  CONSOLE_RUN_REQUESTED: {
    id: 6160,
    source: 'idsync Service',
    level: 'Information',
    message: 'Console user {user} started a {profile} run; its outcome is in the run history.',
    resolution: NO_ACTION,
  },

  // ---------------------------------------------------------------------------------------------
  // 6200–6299 idsync Credentials
  // ---------------------------------------------------------------------------------------------
  CREDENTIAL_CHANGED: {
    id: 6201,
    source: 'idsync Credentials',
    level: 'Information',
    message: 'The credential for connector {connector} was changed; every component uses it from its next call.',
    resolution: NO_ACTION,
  },
  CREDENTIAL_REFUSED: {
    id: 6202,
    source: 'idsync Credentials',
    level: 'Warning',
    message: 'A new credential for connector {connector} was refused by its directory and not saved: {error}. The previous credential is still in use.',
    resolution:
      'Check the account name and the secret, then run `idsync credentials set {connector}` again. Nothing changed meanwhile.',
  },
  CREDENTIAL_TEST_OK: {
    id: 6203,
    source: 'idsync Credentials',
    level: 'Information',
    message: 'The credential for connector {connector} was tested successfully.',
    resolution: NO_ACTION,
  },
  CREDENTIAL_TEST_FAILED: {
    id: 6204,
    source: 'idsync Credentials',
    level: 'Error',
    message: 'The saved credential for connector {connector} failed its test: {error}',
    resolution:
      'Update it with `idsync credentials set {connector}` (validated before it is saved, used from the next call, no restart needed); ' +
      'check that the account is not locked, disabled or expired.',
  },

  // ---------------------------------------------------------------------------------------------
  // 6300–6399 idsync Sync Engine: connectors
  // ---------------------------------------------------------------------------------------------
  CONNECTOR_UNREACHABLE: {
    id: 6301,
    source: 'idsync Sync Engine',
    level: 'Error',
    message: 'Connector {connector} cannot reach {url}: {error}',
    resolution:
      'Check that the server is running and reachable from this host (DNS name, firewall, port 389/636 or 443), then run ' +
      '`idsync credentials test {connector}`. The next cycle retries automatically.',
  },
  CONNECTOR_BIND_FAILED: {
    id: 6302,
    source: 'idsync Sync Engine',
    level: 'Error',
    message: 'Connector {connector} could not bind to {url}: {error}',
    resolution:
      'The directory refused the sign-in for a reason other than a wrong password (which is event 0): check that the account exists, ' +
      'is not locked or disabled, and may read the base DN; if the server demands signing or TLS, use ldaps:// or `tls.startTls: true`. ' +
      'Then run `idsync credentials test {connector}`.',
  },
  CONNECTOR_TLS_FAILED: {
    id: 6303,
    source: 'idsync Sync Engine',
    level: 'Error',
    message: 'The TLS connection to {url} failed for connector {connector}: {error}',
    resolution:
      'The server certificate is not trusted or does not match the host name. Set `tls.ca` to the PEM file of the CA that signed it ' +
      '(and `tls.serverName` if the certificate carries another name) in the connector configuration, then run ' +
      '`idsync credentials test {connector}`. Use `tls.insecureSkipVerify` only in a lab.',
  },
  EXPORT_OBJECT_REJECTED: {
    id: 6304,
    source: 'idsync Sync Engine',
    level: 'Warning',
    message: 'The cloud directory rejected the {operation} of {anchor} ({dn}): {error}',
    resolution:
      'Fix the value the cloud names (often a duplicate userName or mail, or a value that is too long) in the source directory or in ' +
      'the attribute flow rules. The object is retried at the next cycle; `idsync runs` lists every rejected object.',
  },
  CLOUD_TENANT_SHARED: {
    id: 6320,
    source: 'idsync Sync Engine',
    level: 'Error',
    message: 'The export to {url} was refused before writing anything: another idsync installation ({others}) already exports to this tenant; this is installation {installation}.',
    resolution:
      'Two servers exporting to one tenant overwrite each other. For a standby server set `sync.stagingMode: true` (it imports and syncs but exports ' +
      'nothing, ready to take over). To move the export here, put the other server in staging mode or stop it, then add its installation ID to ' +
      '`cloud.takeOverFrom` in this configuration.',
  },
  DRS_FULL_PASS_STARTED: {
    id: 6400,
    source: 'idsync Password Sync',
    level: 'Information',
    message: 'Full password hash replication from DC {dc} for connector {connector} started ({reason}).',
    resolution: NO_ACTION + ' Every user in scope is read once; only changed hashes are queued. Incremental polls follow.',
  },
  DRS_FULL_PASS_COMPLETED: {
    id: 6401,
    source: 'idsync Password Sync',
    level: 'Information',
    message: 'Full password hash replication from DC {dc} for connector {connector} completed: {objects} objects read, {queued} password changes queued.',
    resolution: NO_ACTION,
  },
  DRS_REPLICATION_RECOVERED: {
    id: 6402,
    source: 'idsync Password Sync',
    level: 'Information',
    message: 'Password hash replication from DC {dc} for connector {connector} works again.',
    resolution: NO_ACTION + ' Changes made while it failed are picked up by this poll.',
  },
  DRS_STATE_DISCARDED: {
    id: 6403,
    source: 'idsync Password Sync',
    level: 'Warning',
    message: 'The saved replication state of connector {connector} cannot be used with DC {dc} ({reason}); a full pass from zero follows.',
    resolution:
      'No action is needed for the passwords: the full pass reads every user again and queues the hashes that changed, so nothing ' +
      'changed in between is lost. If the DC was restored from a backup or a VM snapshot, check its own replication health too ' +
      '(Windows: repadmin /showrepl; Samba: samba-tool drs showrepl).',
  },
  HA_LEADER_ACQUIRED: {
    id: 6550,
    source: 'idsync Service',
    level: 'Warning',
    message: 'Node {node} is now the leader (fencing token {token}); previous holder: {previous}. It runs the sync cycles and password delivery from the saved watermarks.',
    resolution:
      'No action is needed for the sync: nothing is lost or exported twice. If the previous holder is another node, find out why it stopped renewing ' +
      '(crash, pause, network cut to PostgreSQL): `idsync service status` on each node, and its log.',
  },
  HA_LEASE_LOST: {
    id: 6551,
    source: 'idsync Service',
    level: 'Error',
    message: 'Node {node} lost the leader lease (token {token}): {reason}. Its sync cycle and password delivery were stopped; it is a standby now.',
    resolution:
      'Another node takes over (event 6550 there). If this repeats, check this node\'s connection to PostgreSQL and whether the process is starved or paused ' +
      '(a lease renewal must reach the database within the lease time, `ha.leaseTtl`).',
  },
  HA_FENCED: {
    id: 6552,
    source: 'idsync Service',
    level: 'Warning',
    message: 'A write of node {node} with fencing token {token} was refused ({by}): a newer leader holds token {highest}. Nothing was written.',
    resolution:
      'This is the fence doing its job after a takeover: the node stops leading and serves as a standby. Check why it lost the lease ' +
      '(event 6551 just before, its log: a pause, a stall, a network cut to PostgreSQL); `idsync service status` names the leader.',
  },
  HA_STORE_UNREACHABLE: {
    id: 6553,
    source: 'idsync Service',
    level: 'Warning',
    message: 'Node {node} cannot reach PostgreSQL to acquire or renew the leader lease: {error}.',
    resolution:
      'Check the database (`store.url` in the configuration) and the network path to it. While a leader cannot renew, it stops at the end of its lease ' +
      'and another node that reaches the database takes over.',
  },

  // ---------------------------------------------------------------------------------------------
  // Connector identity (6580–6589): a source connector is its name in idsync.yaml.
  // ---------------------------------------------------------------------------------------------
  CONNECTOR_NOT_CONFIGURED: {
    id: 6580,
    source: 'idsync Sync Engine',
    level: 'Error',
    message: 'The sync cycle was refused: the store holds objects of source connector(s) that the configuration does not name: {connectors}. Nothing was changed.',
    resolution:
      'If a connector was renamed in idsync.yaml, run `idsync connectors rename OLD NEW`; if it was removed on purpose, run `idsync connectors forget OLD` ' +
      '(the objects only it contributed are deleted from the cloud at the next cycle). `idsync connectors list` shows both sides.',
  },
  CONNECTOR_RENAMED: {
    id: 6581,
    source: 'idsync Sync Engine',
    level: 'Information',
    message: 'Source connector {from} was renamed to {to}: its {objects} connector-space objects, watermarks, password state, credential and run history moved with it.',
    resolution: NO_ACTION,
  },
  CONNECTOR_FORGOTTEN: {
    id: 6582,
    source: 'idsync Sync Engine',
    level: 'Warning',
    message:
      'Source connector {connector} was forgotten: its {objects} connector-space objects were removed, and {deletes} metaverse objects that only it contributed are deleted from the cloud by the next cycle.',
    resolution: 'Check the deletions with `idsync sync --preview`; the deletion threshold applies to them as to any deletion (`idsync sync --allow-deletes` lets a large one through).',
  },
});

export type EventName = keyof typeof EVENTS;

/** Every definition, in catalog order. */
export const ALL_EVENTS: readonly EventDefinition[] = Object.freeze(Object.values(EVENTS));

const byId = new Map<number, EventDefinition>(ALL_EVENTS.map((e) => [e.id, e]));
const byName = new Map<string, EventDefinition>(ALL_EVENTS.map((e) => [e.name, e]));

export function eventById(id: number): EventDefinition | undefined {
  return byId.get(id);
}

export function eventByName(name: string): EventDefinition | undefined {
  return byName.get(name.toUpperCase());
}
