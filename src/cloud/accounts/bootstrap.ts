/**
 * First start: make sure a global administrator exists. Its name and password come from the
 * options or IDSYNC_CLOUD_ADMIN_USER / IDSYNC_CLOUD_ADMIN_PASSWORD; without a password one is
 * generated and handed back exactly once (the caller shows it; it is never logged nor stored in
 * plaintext). Later starts change nothing, even when other values are given.
 */
import { IdsyncError } from '../../core/errors.js';
import type { AccountStore } from './store.js';
import { generateSecret } from '../../web/secret-hash.js';
import { isValidName, passwordProblem } from './policy.js';

export const DEFAULT_ADMIN_USER = 'admin';

export interface BootstrapResult {
  /** The administrator created now, or the first existing one. */
  adminUser: string;
  /** Only when the password was generated on this start: show it once, then forget it. */
  generatedPassword?: string;
  /** True when this start created the administrator. */
  created: boolean;
}

export async function ensureAdministrator(
  accounts: AccountStore,
  options: { adminUser?: string | undefined; adminPassword?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
): Promise<BootstrapResult> {
  if ((await accounts.countAdministrators()) > 0) {
    return { adminUser: (await accounts.firstAdministrator())!, created: false };
  }
  const adminUser = options.adminUser || env.IDSYNC_CLOUD_ADMIN_USER || DEFAULT_ADMIN_USER;
  if (!isValidName(adminUser)) {
    throw new IdsyncError('CONFIG_INVALID', 'the administrator name may only hold letters, digits and . _ @ - (up to 128)', {
      hint: 'Choose another administrator name with --admin-user or IDSYNC_CLOUD_ADMIN_USER.',
    });
  }
  const given = options.adminPassword || env.IDSYNC_CLOUD_ADMIN_PASSWORD;
  const problem = given ? passwordProblem(given) : undefined;
  if (problem) {
    throw new IdsyncError('CONFIG_INVALID', `the administrator password is not acceptable: ${problem}`, {
      hint: 'Set IDSYNC_CLOUD_ADMIN_PASSWORD to a longer password, or leave it unset to have one generated.',
    });
  }
  const password = given || generateSecret();
  const created = await accounts.createAccount(adminUser, password, 'GlobalAdministrator');
  if (!created) {
    // Another node on the same PostgreSQL made the administrator a moment ago: it is there.
    if ((await accounts.getAccount(adminUser))?.role === 'GlobalAdministrator') return { adminUser, created: false };
    // The name exists as a sync account: promoting it silently would be a surprise.
    throw new IdsyncError('CONFIG_INVALID', `cannot create the administrator "${adminUser}": a sync account of that name exists`, {
      hint: 'Choose another administrator name with --admin-user or IDSYNC_CLOUD_ADMIN_USER.',
    });
  }
  return given ? { adminUser, created: true } : { adminUser, generatedPassword: password, created: true };
}
