/**
 * Roles of cloud accounts and clients (the incumbent's names, which admins know).
 *
 * | role                              | SCIM | password hashes | admin API |
 * |-----------------------------------|------|-----------------|-----------|
 * | GlobalAdministrator               | yes  | yes             | yes       |
 * | DirectorySynchronizationAccounts  | yes  | yes             | no        |
 *
 * Synced directory users have no role: their sign-in tokens open none of these APIs.
 */
export const ROLES = ['GlobalAdministrator', 'DirectorySynchronizationAccounts'] as const;
export type Role = (typeof ROLES)[number];

/** Short names accepted by the API and the CLI (`--role sync`). */
const ALIASES: Record<string, Role> = {
  globaladministrator: 'GlobalAdministrator',
  admin: 'GlobalAdministrator',
  directorysynchronizationaccounts: 'DirectorySynchronizationAccounts',
  sync: 'DirectorySynchronizationAccounts',
};

export function parseRole(value: unknown): Role | undefined {
  return typeof value === 'string' ? ALIASES[value.toLowerCase()] : undefined;
}

export const SCIM_ROLES: readonly Role[] = ['GlobalAdministrator', 'DirectorySynchronizationAccounts'];
export const PASSWORD_HASH_ROLES: readonly Role[] = ['GlobalAdministrator', 'DirectorySynchronizationAccounts'];
export const ADMIN_ROLES: readonly Role[] = ['GlobalAdministrator'];
