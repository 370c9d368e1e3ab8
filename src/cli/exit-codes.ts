import type { ErrorCode } from '../core/errors.js';

/** Exit codes are part of the interface: scripts and systemd units rely on them. */
export const EXIT = {
  OK: 0,
  /** The command ran but something failed (a run with errors, a doctor finding). */
  FAILED: 1,
  /** Bad usage or invalid configuration: nothing was attempted. */
  USAGE: 2,
  /** A directory or the cloud could not be reached or refused the credential. */
  UNAVAILABLE: 3,
  /** Another run holds the lock. */
  BUSY: 4,
} as const;

export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case 'CONFIG_NOT_FOUND':
    case 'CONFIG_INVALID':
    case 'LDIF_PARSE_ERROR':
    case 'LDIF_NOT_FOUND':
    case 'LDAP_INVALID_DN':
    case 'HASH_INPUT_INVALID':
    case 'PASSWORD_TOO_LONG':
    case 'PASSWORD_NOT_TEXT':
    case 'PASSWORD_USER_UNKNOWN':
    case 'PASSWORD_INPUT_INVALID':
      return EXIT.USAGE;
    case 'LDAP_UNREACHABLE':
    case 'LDAP_BIND_FAILED':
    case 'LDAP_TLS_FAILED':
    case 'CLOUD_UNREACHABLE':
    case 'CLOUD_AUTH_FAILED':
    case 'CREDENTIAL_MISSING':
    case 'CREDENTIAL_INVALID':
    case 'AGENT_FORWARD_FAILED':
      return EXIT.UNAVAILABLE;
    case 'RUN_IN_PROGRESS':
      return EXIT.BUSY;
    default:
      return EXIT.FAILED;
  }
}
