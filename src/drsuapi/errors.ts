/** MS-DRSR failures with codes and the fixes an administrator can apply. */
import { IdsyncError, type ErrorCode, type IdsyncErrorOptions } from '../core/errors.js';

export const ERROR_DS_DRA_ACCESS_DENIED = 0x2105;
export const ERROR_DS_DRA_BAD_DN = 0x20f7;
export const ERROR_DS_DRA_INVALID_PARAMETER = 0x20f5;
export const ERROR_DS_CANT_FIND_EXPECTED_NC = 0x2116;
export const WERR_INVALID_PARAMETER = 0x57;
// Transient: the DC cannot serve anything right now; the next poll retries the same state.
const TRANSIENT = new Set([
  0x20f6, // ERROR_DS_DRA_BUSY
  0x20fe, // ERROR_DS_DRA_OUT_OF_MEM
  0x2107, // ERROR_DS_DRA_RPC_CANCELLED
  0x210d, // ERROR_DS_DRA_PREEMPTED
  0x210e, // ERROR_DS_DRA_ABANDON_SYNC
  0x210f, // ERROR_DS_DRA_SHUTDOWN
  0x20e2, // ERROR_DS_DRA_SCHEMA_MISMATCH (retried after the schema replicates)
]);
/** The ERROR_DS_DRA_* block of winerror.h: DRA_SCHEMA_MISMATCH (0x20e2) … DRA_* (0x21ff). */
const DRA_FIRST = 0x20e2;
const DRA_LAST = 0x21ff;

/**
 * Whether a GetNCChanges WERROR means the DC will not serve the request as sent (so a pass from
 * zero, with a fresh state, is worth trying) rather than that it cannot serve anything now
 * (busy, shutting down, out of memory: the next poll retries the same state) or that the
 * account lacks rights (event 611; a full pass would fail the same way).
 */
export function refusesState(werror: number): boolean {
  if (werror === ERROR_DS_DRA_ACCESS_DENIED) return false;
  if (TRANSIENT.has(werror)) return false;
  return werror === WERR_INVALID_PARAMETER || (werror >= DRA_FIRST && werror <= DRA_LAST);
}

export const RIGHT_GET_CHANGES = '1131f6aa-9c07-11d1-f79f-00c04fc2dcd2';
export const RIGHT_GET_CHANGES_ALL = '1131f6ad-9c07-11d1-f79f-00c04fc2dcd2';

/** The DRS_* codes of the one error-code union (src/core/errors.ts). */
export type DrsErrorCode = Extract<ErrorCode, `DRS_${string}`>;

export class DrsError extends IdsyncError {
  readonly werror: number | undefined;
  constructor(code: DrsErrorCode, message: string, options: IdsyncErrorOptions & { werror?: number } = {}) {
    super(code, message, options);
    this.name = 'DrsError';
    this.werror = options.werror;
  }
}

/** The commands that grant both replication rights to `account` on the domain root `domainDn`. */
export function grantCommands(account: string, domainDn: string): { windows: string[]; samba: string[] } {
  return {
    windows: [
      `dsacls "${domainDn}" /G "${account}:CA;Replicating Directory Changes"`,
      `dsacls "${domainDn}" /G "${account}:CA;Replicating Directory Changes All"`,
    ],
    samba: [
      `samba-tool dsacl set --objectdn='${domainDn}' --sddl='(OA;;CR;${RIGHT_GET_CHANGES};;<SID of ${account}>)'`,
      `samba-tool dsacl set --objectdn='${domainDn}' --sddl='(OA;;CR;${RIGHT_GET_CHANGES_ALL};;<SID of ${account}>)'`,
    ],
  };
}

export function accessDenied(account: string, domainDn: string): DrsError {
  const g = grantCommands(account, domainDn);
  return new DrsError(
    'DRS_ACCESS_DENIED',
    `the DC refused to replicate password hashes to ${account} (ERROR_DS_DRA_ACCESS_DENIED): the account needs both ` +
      `DS-Replication-Get-Changes (${RIGHT_GET_CHANGES}) and DS-Replication-Get-Changes-All (${RIGHT_GET_CHANGES_ALL}) on ${domainDn}`,
    {
      werror: ERROR_DS_DRA_ACCESS_DENIED,
      hint:
        `Grant both rights on the domain root. Windows: ${g.windows.join(' ; ')} ` +
        `(or in PowerShell: Add-ADPermission / the "Delegate Control" wizard with "Replicating Directory Changes" and "Replicating Directory Changes All"). ` +
        `Samba: ${g.samba.join(' ; ')}. No restart is needed: the next poll uses the new rights.`,
      details: { account, domainDn, rights: [RIGHT_GET_CHANGES, RIGHT_GET_CHANGES_ALL], werror: '0x00002105' },
    },
  );
}

export function drsFailed(call: string, werror: number): DrsError {
  if (werror === WERR_INVALID_PARAMETER) {
    return new DrsError('DRS_FAILED', `${call} failed: WERR_INVALID_PARAMETER (0x57)`, {
      werror,
      hint: 'The DC refused the request parameters (on Samba typically the prefix table or the naming context DN). Check the base DN of the connector.',
    });
  }
  return new DrsError('DRS_FAILED', `${call} failed with WERROR 0x${werror.toString(16).padStart(8, '0')}`, {
    werror,
    hint: 'The DC could not serve the replication request; its own event log (Directory Service) or Samba log names the cause.',
    details: { werror: `0x${werror.toString(16).padStart(8, '0')}` },
  });
}
