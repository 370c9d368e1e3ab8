/**
 * Errors of the DCE/RPC client, each with a stable code. Messages name what failed (a port, a
 * structure, a status) and never carry credentials or key material.
 */
import { IdsyncError, type ErrorCode, type IdsyncErrorOptions } from '../core/errors.js';

/** The RPC_* codes of the one error-code union (src/core/errors.ts). */
export type RpcErrorCode = Extract<ErrorCode, `RPC_${string}`>;

export class RpcError extends IdsyncError {
  /** The fault or status code from the server, when there is one. */
  readonly status: number | undefined;

  constructor(code: RpcErrorCode, message: string, options: IdsyncErrorOptions & { status?: number } = {}) {
    super(code, message, options);
    this.name = 'RpcError';
    this.status = options.status;
  }
}

/** Names of the fault statuses a DRSUAPI client meets (C706 Appendix E, MS-RPCE 2.2.2.11, MS-ERREF). */
export const FAULT_NAMES: Readonly<Record<number, string>> = {
  0x00000005: 'nca_s_fault_access_denied (ERROR_ACCESS_DENIED)',
  0x000006f7: 'RPC_X_BAD_STUB_DATA (the server could not decode the request)',
  0x000006d1: 'RPC_S_PROCNUM_OUT_OF_RANGE',
  0x1c010002: 'nca_s_op_rng_error (no such operation)',
  0x1c010003: 'nca_s_unk_if (interface not offered)',
  0x1c01000b: 'nca_s_proto_error',
  0x1c00001b: 'nca_s_fault_remote_no_memory',
  0x1c000012: 'nca_s_fault_ndr',
  0x1c00001a: 'nca_s_fault_context_mismatch',
};

export function faultName(status: number): string {
  return FAULT_NAMES[status] ?? `status 0x${status.toString(16).padStart(8, '0')}`;
}
