/**
 * Gates for tests that need real servers. Locally, a missing binary skips the test; in CI
 * (IDSYNC_REQUIRE_INTEGRATION=1) it fails it, so a broken CI image never passes by skipping.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';

export type IntegrationBinary = 'slapd' | 'samba' | 'samba-tool' | 'ldapadd' | 'ldapmodify' | 'slapadd' | 'ldbadd' | 'openssl' | 'chromium';

/** What each server test needs besides the server itself. */
const COMPANIONS: Record<string, IntegrationBinary[]> = {
  slapd: ['slapd', 'slapadd', 'ldapadd', 'ldapmodify', 'openssl'],
  samba: ['samba', 'samba-tool'],
};

export function integrationRequired(): boolean {
  return process.env.IDSYNC_REQUIRE_INTEGRATION === '1';
}

/** Full path of an executable found on PATH or in the sbin directories, else undefined. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Why `name` cannot run here, or undefined when it can. */
export function unavailableReason(name: IntegrationBinary): string | undefined {
  const missing = (COMPANIONS[name] ?? [name]).filter((b) => !findBinary(b));
  if (missing.length) return `${missing.join(', ')} not installed`;
  if (name === 'samba' && process.getuid?.() !== 0) return 'a Samba AD DC must run as root';
  return undefined;
}

/**
 * For `describe(name, { skip: skipUnless('slapd') }, ...)`: a skip reason, or false when the binary
 * is there. With IDSYNC_REQUIRE_INTEGRATION=1 a missing binary throws instead (the suite fails).
 */
export function skipUnless(name: IntegrationBinary): string | false {
  const reason = unavailableReason(name);
  if (!reason) return false;
  if (integrationRequired()) {
    throw new Error(`IDSYNC_REQUIRE_INTEGRATION=1 but ${reason}: install it (see docs/ and .ci/) or unset the variable`);
  }
  return reason;
}

/**
 * Inside a test: returns true when `name` is available. Otherwise skips the test (returns false),
 * or fails it when IDSYNC_REQUIRE_INTEGRATION=1.
 *   if (!requireBinary(t, 'slapd')) return;
 */
export function requireBinary(t: Pick<TestContext, 'skip'>, name: IntegrationBinary): boolean {
  const reason = skipUnless(name);
  if (reason === false) return true;
  t.skip(reason);
  return false;
}
