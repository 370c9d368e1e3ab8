/**
 * The sync console's own account (`idsync console set-password`): one user name and an scrypt hash
 * of its password in <dataDir>/console-account.json (0600). The password itself is never stored.
 * Without the file the console answers but nobody can sign in.
 */
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { burnSecretCheck, DEFAULT_SECRET_HASH_PARAMS, hashSecret, verifySecret, type SecretHashParams } from '../web/secret-hash.js';
import { IdsyncError } from '../core/errors.js';

export const CONSOLE_ACCOUNT_FILE = 'console-account.json';
export const MIN_CONSOLE_PASSWORD_LENGTH = 12;
/** 1 to 64 letters, digits, ".", "_", "@" or "-". */
export const CONSOLE_USERNAME = /^[A-Za-z0-9._@-]{1,64}$/;

export interface ConsoleAccount {
  username: string;
  /** scrypt$... (see web/secret-hash.ts). */
  hash: string;
  changedAt: string;
}

export const consoleAccountPath = (dataDir: string): string => path.join(dataDir, CONSOLE_ACCOUNT_FILE);

export function readConsoleAccount(dataDir: string): ConsoleAccount | undefined {
  const file = consoleAccountPath(dataDir);
  if (!existsSync(file)) return undefined;
  let v: Partial<ConsoleAccount>;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as Partial<ConsoleAccount>;
  } catch {
    throw new IdsyncError('CONFIG_INVALID', `${file} is not valid JSON`, { hint: 'Set the console account again with `idsync console set-password`.' });
  }
  if (typeof v.username !== 'string' || typeof v.hash !== 'string') {
    throw new IdsyncError('CONFIG_INVALID', `${file} has no username or hash`, { hint: 'Set the console account again with `idsync console set-password`.' });
  }
  return { username: v.username, hash: v.hash, changedAt: v.changedAt ?? '' };
}

export async function writeConsoleAccount(dataDir: string, username: string, password: string, params: SecretHashParams = DEFAULT_SECRET_HASH_PARAMS): Promise<ConsoleAccount> {
  if (!CONSOLE_USERNAME.test(username)) {
    throw new IdsyncError('CONFIG_INVALID', `the console user name "${username}" is not allowed`, { hint: 'Use 1 to 64 letters, digits, ".", "_", "@" or "-".' });
  }
  if (password.length < MIN_CONSOLE_PASSWORD_LENGTH) {
    throw new IdsyncError('CONFIG_INVALID', `the console password is too short (at least ${MIN_CONSOLE_PASSWORD_LENGTH} characters)`, { hint: 'Choose a longer password.' });
  }
  const account: ConsoleAccount = { username, hash: await hashSecret(password, params), changedAt: new Date().toISOString() };
  const file = consoleAccountPath(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(account) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return account;
}

/** Constant-time; an unknown name costs what a wrong password costs. Re-reads the file each time. */
export async function checkConsolePassword(dataDir: string, username: string, password: string): Promise<boolean> {
  const account = readConsoleAccount(dataDir);
  if (!account || account.username !== username) {
    await burnSecretCheck(password);
    return false;
  }
  return verifySecret(password, account.hash);
}
