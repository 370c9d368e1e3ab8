/** Errors of password hash sync, with their stable codes. */
import { IdsyncError, type IdsyncErrorOptions } from '../core/errors.js';

export type PasswordErrorCode = 'PASSWORD_USER_UNKNOWN' | 'PASSWORD_INPUT_INVALID' | 'AGENT_STATE_INVALID' | 'AGENT_FORWARD_FAILED';

export function passwordError(code: PasswordErrorCode, message: string, options?: IdsyncErrorOptions): IdsyncError {
  return new IdsyncError(code, message, options);
}
