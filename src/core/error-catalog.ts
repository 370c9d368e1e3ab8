/**
 * Every error code of idsync, with what it means, what to do, and the exit code a command ends
 * with when it stops on it. The one source of the exit-code mapping (src/cli/exit-codes.ts) and of
 * docs/errors.md (scripts/gen-errors-doc.ts; a test keeps the page fresh).
 *
 * Typed as a Record over the ErrorCode union: a code added to core/errors.ts without an entry here
 * does not compile.
 */
import type { ErrorCode } from './errors.js';

/** Exit codes are part of the interface: scripts and systemd units rely on them. */
export const EXIT = {
  OK: 0,
  /** The command ran but something failed (a run with errors, a doctor finding). */
  FAILED: 1,
  /** Bad usage, configuration or input data (a malformed file): fix the input and run again. */
  USAGE: 2,
  /** A directory or the cloud could not be reached or refused the credential. */
  UNAVAILABLE: 3,
  /** Another run holds the lock. */
  BUSY: 4,
} as const;

export type ExitName = keyof typeof EXIT;

/** What each exit code means, for --help texts and docs/errors.md. */
export const EXIT_MEANINGS: Record<ExitName, string> = {
  OK: 'success',
  FAILED: 'the command ran but failed or finished with errors (a run with errors, a doctor finding, an export refused by the cloud)',
  USAGE: 'bad usage, configuration or input data — a wrong flag or value, an invalid configuration, a malformed LDIF or hash input; nothing was changed, or the run stopped at the bad input',
  UNAVAILABLE: 'a directory or the cloud could not be reached, or refused the credential',
  BUSY: 'another run or service holds the lock',
};

export interface ErrorInfo {
  /** Where it comes from, for grouping in the docs. */
  area: 'configuration' | 'directories' | 'cloud' | 'credentials' | 'passwords' | 'engine';
  /** The exit code of a command that stops on it. */
  exit: ExitName;
  /** What happened, in one sentence. */
  meaning: string;
  /** What to do (the error's own hint is more specific when it has one). */
  fix: string;
}

export const ERROR_CATALOG: Record<ErrorCode, ErrorInfo> = {
  CONFIG_NOT_FOUND: {
    area: 'configuration',
    exit: 'USAGE',
    meaning: 'No configuration file at --config, $IDSYNC_CONFIG, ./idsync.yaml or /etc/idsync/idsync.yaml.',
    fix: 'Create one with `idsync init`, or name it with `--config FILE` or `IDSYNC_CONFIG`.',
  },
  CONFIG_INVALID: {
    area: 'configuration',
    exit: 'USAGE',
    meaning: 'The configuration file, a rule or a command-line value is invalid; the message names file:line and key.',
    fix: 'Correct the value named; docs/configuration.md describes every key.',
  },
  LDAP_UNREACHABLE: {
    area: 'directories',
    exit: 'UNAVAILABLE',
    meaning: 'The LDAP server could not be reached (connection refused, timeout, DNS).',
    fix: 'Check the url, the network path and that the server runs; `idsync doctor` tests it.',
  },
  LDAP_BIND_FAILED: {
    area: 'directories',
    exit: 'UNAVAILABLE',
    meaning: 'The directory refused the bind DN or password.',
    fix: 'Set the current password with `idsync credentials set <connector>`; check the bind DN.',
  },
  LDAP_TLS_FAILED: {
    area: 'directories',
    exit: 'UNAVAILABLE',
    meaning: 'The TLS handshake with the directory failed (untrusted or expired certificate, wrong name).',
    fix: 'Point `tls.ca` at the CA that issued the server certificate; `idsync doctor` shows the chain.',
  },
  LDAP_SEARCH_FAILED: {
    area: 'directories',
    exit: 'FAILED',
    meaning: 'A search failed: the base DN is missing or not readable by the bind account, or the server refused a control.',
    fix: 'Check the base DN and the bind account\'s read rights.',
  },
  LDAP_INVALID_DN: {
    area: 'directories',
    exit: 'USAGE',
    meaning: 'A distinguished name given on the command line or in the configuration is not a valid DN.',
    fix: 'Quote the DN in the shell and check its syntax (RFC 4514).',
  },
  LDIF_PARSE_ERROR: {
    area: 'directories',
    exit: 'USAGE',
    meaning: 'An LDIF source file is malformed; the message names file:line.',
    fix: 'Fix the LDIF at that line (RFC 2849), then run again.',
  },
  LDIF_NOT_FOUND: {
    area: 'directories',
    exit: 'USAGE',
    meaning: 'An LDIF source file does not exist or cannot be read.',
    fix: 'Check the connector\'s `path` (relative to the configuration file).',
  },
  OBJECT_INVALID: {
    area: 'engine',
    exit: 'FAILED',
    meaning: 'One object could not be synced (a rule failed on it, a required attribute is missing); the others went on.',
    fix: 'See the object and reason in `idsync runs <id>`; fix the source object or the rule.',
  },
  CLOUD_UNREACHABLE: {
    area: 'cloud',
    exit: 'UNAVAILABLE',
    meaning: 'The cloud directory could not be reached.',
    fix: 'Check `cloud.url`, the network path and that the cloud directory runs; queued work waits.',
  },
  CLOUD_UNAVAILABLE: {
    area: 'cloud',
    exit: 'UNAVAILABLE',
    meaning: 'The cloud directory answered but is not available now (429, 5xx): not a credential problem.',
    fix: 'Nothing to change on this side: queued work waits and is retried, honouring Retry-After (event 6112; 6111 when it answers again).',
  },
  CLOUD_AUTH_FAILED: {
    area: 'cloud',
    exit: 'UNAVAILABLE',
    meaning: 'The cloud directory refused the sync credential (or it is locked out there).',
    fix: 'Set the current secret with `idsync credentials set cloud`; a locked account says for how long.',
  },
  CLOUD_REJECTED: {
    area: 'cloud',
    exit: 'FAILED',
    meaning: 'The cloud directory refused a request as invalid (HTTP 4xx).',
    fix: 'The message carries the cloud\'s reason; fix the object or the outbound rule.',
  },
  CLOUD_TENANT_SHARED: {
    area: 'cloud',
    exit: 'USAGE',
    meaning: 'Another idsync installation already exports to this cloud tenant; this one wrote nothing (event 6320).',
    fix: 'Make this server a standby with `sync.stagingMode: true`, or move the export here deliberately with `cloud.takeOverFrom: [ID]` (docs/service.md, "A second server").',
  },
  EXPORT_PENDING: {
    area: 'cloud',
    exit: 'FAILED',
    meaning: 'A cycle ended with objects it could not export; they stay pending and the run is not a success (event 6021).',
    fix: 'Read the run\'s errors with `idsync runs ID`: each names its object and the cloud\'s reason. The next cycle retries them.',
  },
  CLOUD_CONFLICT: {
    area: 'cloud',
    exit: 'FAILED',
    meaning: 'The cloud directory already has another object with the same unique name (HTTP 409).',
    fix: 'Find the duplicate userName or externalId and remove or rename one of them.',
  },
  CLOUD_SERVER_ERROR: {
    area: 'cloud',
    exit: 'FAILED',
    meaning: 'The cloud directory failed on a request (HTTP 5xx).',
    fix: 'See the cloud directory\'s log; the change is tried again at the next cycle.',
  },
  CREDENTIAL_MISSING: {
    area: 'credentials',
    exit: 'UNAVAILABLE',
    meaning: 'No credential is stored for a connector that needs one.',
    fix: 'Store it with `idsync credentials set <connector>`.',
  },
  CREDENTIAL_INVALID: {
    area: 'credentials',
    exit: 'UNAVAILABLE',
    meaning: 'A stored credential cannot be used: empty, too long, encrypted with another key, or altered.',
    fix: 'Set it again with `idsync credentials set <connector>`.',
  },
  SECRET_KEY_INVALID: {
    area: 'credentials',
    exit: 'FAILED',
    meaning: 'The credential store key (secret.key or $IDSYNC_SECRET_KEY) is malformed, unreadable or readable by others.',
    fix: 'Restore the key from its backup, or `chmod 600` the key file.',
  },
  PASSWORD_TOO_LONG: {
    area: 'passwords',
    exit: 'USAGE',
    meaning: 'A password given to `idsync hash` is longer than the hash accepts.',
    fix: 'Check that the input is the password alone.',
  },
  PASSWORD_NOT_TEXT: {
    area: 'passwords',
    exit: 'USAGE',
    meaning: 'A password given to `idsync hash` is not valid UTF-8 text.',
    fix: 'Send the password as UTF-8 text, one per line.',
  },
  HASH_INPUT_INVALID: {
    area: 'passwords',
    exit: 'USAGE',
    meaning: 'A line of input to `idsync hash` is malformed; the message names the line, never the password.',
    fix: 'Fix that line of the input (docs/passwords.md).',
  },
  PASSWORD_USER_UNKNOWN: {
    area: 'passwords',
    exit: 'USAGE',
    meaning: 'A password command named a user that is not in the metaverse.',
    fix: 'Check the name with `idsync passwords status USER`; run `idsync sync` first.',
  },
  PASSWORD_INPUT_INVALID: {
    area: 'passwords',
    exit: 'USAGE',
    meaning: 'A password hash batch or notification is malformed.',
    fix: 'The message names the field; check the sender (agent) version.',
  },
  AGENT_STATE_INVALID: {
    area: 'passwords',
    exit: 'FAILED',
    meaning: 'The password agent\'s DirSync state cannot be read, or the directory did not answer DirSync.',
    fix: 'Check the agent\'s --state directory and its rights on the DC.',
  },
  AGENT_FORWARD_FAILED: {
    area: 'passwords',
    exit: 'UNAVAILABLE',
    meaning: 'The password agent could not deliver hashes to the sync service.',
    fix: 'Check --forward, the agent token and that `idsync serve` runs; the agent retries.',
  },
  STORE_FAILED: {
    area: 'engine',
    exit: 'FAILED',
    meaning: 'The SQLite database could not be opened, migrated or written (the disk is full, the file or its folder is read-only, the file is damaged).',
    fix: 'The hint names the cause: free disk space, make the data directory and its files writable by the user idsync runs as, or restore a damaged file from its backup.',
  },
  PATH_UNUSABLE: {
    area: 'engine',
    exit: 'FAILED',
    meaning: 'A folder or file idsync must create or write (the data directory, the folder of `events.jsonFile`) cannot be: a part of the path is a regular file, the file system is read-only or full, or this user may not write there. The message names the path and the reason.',
    fix: 'Fix the path in the configuration, make the folder writable by the user idsync runs as, or free space, as the hint says.',
  },
  RUN_IN_PROGRESS: {
    area: 'engine',
    exit: 'BUSY',
    meaning: 'Another sync run (or the service) holds the lock.',
    fix: 'Wait for it (`idsync runs`), or stop the service first.',
  },
  EXPORT_FAILED: {
    area: 'engine',
    exit: 'FAILED',
    meaning: 'The export to the cloud failed as a whole.',
    fix: 'See the message and `idsync runs <id>`; the next cycle retries.',
  },
  DELETION_THRESHOLD_EXCEEDED: {
    area: 'engine',
    exit: 'FAILED',
    meaning: 'The export would delete more cloud objects than `sync.deletionThreshold` allows; nothing was exported.',
    fix: 'Check why so many objects left the scope; if intended, run `idsync sync --allow-deletes`.',
  },
  IMPORT_FAILED: {
    area: 'engine',
    exit: 'FAILED',
    meaning: 'An import from a source failed as a whole.',
    fix: 'See the message and `idsync runs <id>`.',
  },
  WATERMARK_INVALID: {
    area: 'engine',
    exit: 'FAILED',
    meaning: 'A saved delta watermark cannot be used (the directory was restored or its change log purged); a full import runs instead.',
    fix: 'Nothing, once; if it repeats, keep the directory\'s change history longer than the sync interval.',
  },
  CONNECTOR_NOT_CONFIGURED: {
    area: 'engine',
    exit: 'USAGE',
    meaning: 'The store holds the connector space of a source connector that is not in the configuration (it was renamed or removed there); the cycle was refused before it changed anything.',
    fix: 'If you renamed it, `idsync connectors rename OLD NEW`; if you removed it on purpose, `idsync connectors forget OLD` (its objects are deleted from the cloud at the next cycle, under the deletion threshold).',
  },
  CONNECTOR_UNKNOWN: {
    area: 'engine',
    exit: 'USAGE',
    meaning: 'The store holds nothing for the connector named: there is nothing to rename or forget.',
    fix: 'List what the configuration and the store know with `idsync connectors list`.',
  },
  CONNECTOR_NAME_IN_USE: {
    area: 'engine',
    exit: 'USAGE',
    meaning: 'The name is taken: the store already holds state for the new name of a rename, or the connector to forget is still in the configuration. Nothing was changed.',
    fix: 'Pick another name, forget the other connector first (`idsync connectors forget`), or remove the connector from idsync.yaml before forgetting it.',
  },
  LEASE_LOST: {
    area: 'engine',
    exit: 'BUSY',
    meaning: 'This node no longer holds the leader lease (another node took over, or the lease could not be renewed in time); the write was refused so that only the leader writes.',
    fix: 'Nothing, usually: the node that holds the lease runs the cycles and password delivery (`idsync service status` names it). If no node leads, check that every node reaches PostgreSQL (docs/ha.md).',
  },
  RPC_UNREACHABLE: {
    area: 'passwords',
    exit: 'UNAVAILABLE',
    meaning: "The domain controller's RPC port (endpoint mapper 135 or the DRSUAPI port) could not be reached, or the connection closed.",
    fix: "Open TCP 135 and the DC's dynamic RPC ports (49152–65535, or the pinned DRSUAPI port) from this server to the DC; the message names the port. Queued work waits.",
  },
  RPC_ENDPOINT_NOT_FOUND: {
    area: 'passwords',
    exit: 'UNAVAILABLE',
    meaning: "The DC's endpoint mapper knows no TCP endpoint for DRSUAPI.",
    fix: 'Check that the host is a domain controller with its RPC service running (Samba: `server services` includes rpc); or set `passwords.rpcPort`.',
  },
  RPC_TIMEOUT: {
    area: 'passwords',
    exit: 'UNAVAILABLE',
    meaning: 'The domain controller did not answer an RPC call in time.',
    fix: "Check the DC's load and the network path; the next poll retries.",
  },
  RPC_BIND_REJECTED: {
    area: 'passwords',
    exit: 'FAILED',
    meaning: 'The domain controller refused the DCE/RPC bind (interface or security settings).',
    fix: 'Check that the host is a domain controller; the message carries its reason.',
  },
  RPC_AUTH_FAILED: {
    area: 'passwords',
    exit: 'UNAVAILABLE',
    meaning: "The domain controller refused the connector's account for NTLM over RPC (wrong password, NTLM disabled, or missing required NTLM features).",
    fix: 'Set the current password with `idsync credentials set CONNECTOR`; NTLM must be allowed for this account (Kerberos is not supported for DRS).',
  },
  RPC_PROTOCOL_ERROR: {
    area: 'passwords',
    exit: 'FAILED',
    meaning: 'A DCE/RPC or NTLM message from the server could not be understood.',
    fix: "Check that the configured host and port are the DC's RPC endpoint; report the message if it is.",
  },
  RPC_NDR_INVALID: {
    area: 'passwords',
    exit: 'FAILED',
    meaning: 'A reply from the domain controller had an unexpected structure (NDR); the message names the structure.',
    fix: "Report it with the DC's version: nothing was queued from that reply. The next poll retries.",
  },
  RPC_FAULT: {
    area: 'passwords',
    exit: 'FAILED',
    meaning: 'The domain controller answered an RPC call with a fault; the message names it.',
    fix: "The message names the fault; check the DC's event log for the same time.",
  },
  RPC_INTEGRITY_FAILED: {
    area: 'passwords',
    exit: 'FAILED',
    meaning: 'A reply from the domain controller failed its NTLM signature check: the traffic was altered or the session is broken.',
    fix: 'Check for a device that rewrites traffic between idsync and the DC; nothing from that reply was used.',
  },
  DRS_ACCESS_DENIED: {
    area: 'passwords',
    exit: 'UNAVAILABLE',
    meaning: 'The account may not replicate password hashes: it lacks DS-Replication-Get-Changes and DS-Replication-Get-Changes-All on the domain root (event 611).',
    fix: 'Grant both rights (docs/password-hash-sync.md#drs gives the dsacls/PowerShell and `samba-tool dsacl set` commands); the next poll picks it up without a restart.',
  },
  DRS_FAILED: {
    area: 'passwords',
    exit: 'FAILED',
    meaning: 'Password hash replication from the DC failed; the message says why.',
    fix: 'Read the message and event 611; `idsync doctor` checks the replication path.',
  },
  DRS_SECRET_INVALID: {
    area: 'passwords',
    exit: 'FAILED',
    meaning: 'A replicated secret did not decrypt (checksum mismatch): wrong session key or a damaged reply.',
    fix: 'Nothing was queued from it; the next poll retries. Report it if it persists.',
  },
  INTERNAL: {
    area: 'engine',
    exit: 'FAILED',
    meaning: 'An unexpected error: a bug.',
    fix: 'Report it with the output of the command and `idsync doctor --json`.',
  },
};

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CATALOG, code);
}

/**
 * The exit code of a command that stops on this error: the one mapping every command uses. Takes
 * a string too (a code read back from a run record); an unknown one is a failure.
 */
export function exitCodeFor(code: ErrorCode | string): number {
  return isErrorCode(code) ? EXIT[ERROR_CATALOG[code].exit] : EXIT.FAILED;
}
