/**
 * `idsync service install`: systemd units a Linux administrator would ship. `idsync.service` runs
 * `idsync serve` in the foreground (Type=simple) as a dedicated system user (default `idsync`), with
 * its data in StateDirectory= and its configuration in ConfigurationDirectory= when they live in
 * /var/lib and /etc, sandboxed, restarted on failure, with a stop timeout above the service's own
 * drain time (30 s). `--cloud` writes `idsync-cloud.service` for `idsync cloud serve` the same way.
 *
 * The unit runs the installed `idsync` command (found on PATH, or --exec), never `node` on a
 * checkout's files: a unit must survive the checkout being moved or updated. systemctl and useradd
 * are never called: `--create-user` writes a sysusers.d entry and the command prints the next steps.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { IdsyncError } from '../core/errors.js';
import { DEFAULT_ENTRY } from './daemon.js';
import { NODE_FLAGS } from './node-flags.js';

export const UNIT_NAME = 'idsync.service';
export const CLOUD_UNIT_NAME = 'idsync-cloud.service';
export const SYSTEM_UNIT_DIR = '/etc/systemd/system';
export const SYSUSERS_DIR = '/etc/sysusers.d';
export const DEFAULT_SERVICE_USER = 'idsync';
export const DEFAULT_CLOUD_USER = 'idsync-cloud';
export const DEFAULT_CLOUD_DATA = '/var/lib/idsync-cloud';
export const userUnitDir = (): string => path.join(process.env.XDG_CONFIG_HOME || path.join(homedir(), '.config'), 'systemd', 'user');

export interface UnitOptions {
  /** A user unit (~/.config/systemd/user), for `systemctl --user`. */
  user?: boolean;
  /** User= of a system unit (default `idsync`; `idsync-cloud` for the cloud unit). */
  runAs?: string;
  /** Extra `serve` arguments, e.g. ['--interval', '10m']. */
  serveArgs?: string[];
  /** The idsync executable the unit runs (default: `idsync` found on PATH). */
  exec?: string;
  /** PATH to search for `idsync` (default process.env.PATH). */
  searchPath?: string;
}

export interface CloudUnitOptions {
  runAs?: string;
  exec?: string;
  searchPath?: string;
  /** --data of `cloud serve` (default /var/lib/idsync-cloud). */
  data?: string;
  host?: string;
  port?: number;
  /** --public-url of `cloud serve` (a TLS proxy in front). */
  publicUrl?: string;
}

export interface RenderedUnit {
  name: string;
  unit: string;
  /** The system user the unit runs as (system units). */
  user?: string;
  /** Things the administrator should know: printed on stderr by the command. */
  warnings: string[];
  /** Extra next steps (e.g. chown of a data directory systemd does not manage). */
  steps: string[];
}

/** Quotes an ExecStart word for systemd when it needs it. */
function q(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const TMP_DIRS = ['/tmp', '/var/tmp'];
const HOME_DIRS = ['/home', '/root', '/run/user'];
const under = (p: string, dirs: string[]) => dirs.some((d) => p === d || p.startsWith(`${d}/`));

function checkUser(name: string): void {
  if (!/^[a-z_][a-z0-9_-]*\$?$/i.test(name)) {
    throw new IdsyncError('CONFIG_INVALID', `"${name}" is not a user name`, { hint: 'Pass a system user, e.g. --run-as idsync.' });
  }
}

/** Whether a local user exists (getent, so NSS users count too). */
export function userExists(name: string): boolean {
  const r = spawnSync('getent', ['passwd', name], { stdio: 'ignore' });
  return r.status === 0;
}

/** The git checkout `file` lives in, if any (an `npm link`ed command resolves into one). */
function checkoutOf(file: string): string | undefined {
  let dir: string;
  try {
    dir = path.dirname(realpathSync(file));
  } catch {
    return undefined;
  }
  for (;;) {
    if (existsSync(path.join(dir, '.git'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** The command words that start idsync in a unit, and warnings about them. */
function execWords(opts: { exec?: string | undefined; searchPath?: string | undefined }, system: boolean, warnings: string[]): string[] {
  let exe = opts.exec;
  if (exe === undefined) {
    for (const dir of (opts.searchPath ?? process.env.PATH ?? '').split(':').filter(Boolean)) {
      const candidate = path.join(dir, 'idsync');
      try {
        accessSync(candidate, constants.X_OK);
        exe = candidate;
        break;
      } catch {
        // not here
      }
    }
  }
  if (exe === undefined) {
    if (system) {
      throw new IdsyncError('CONFIG_INVALID', 'the `idsync` command is not on PATH, so the unit would have to run this checkout\'s files', {
        hint: 'Install the command first (`sudo npm install -g .` in the checkout, or the package), or pass --exec /path/to/idsync.',
      });
    }
    // A user unit for a developer may run the checkout: say so.
    warnings.push(`the unit runs this checkout (${path.dirname(path.dirname(DEFAULT_ENTRY))}): moving or updating it changes what the service runs`);
    return [process.execPath, ...NODE_FLAGS, path.resolve(DEFAULT_ENTRY)];
  }
  if (!path.isAbsolute(exe)) throw new IdsyncError('CONFIG_INVALID', `--exec must be an absolute path, got "${exe}"`, { hint: 'For example --exec /usr/bin/idsync.' });
  const checkout = checkoutOf(exe);
  if (checkout) {
    warnings.push(`${exe} resolves into the git checkout ${checkout} (npm link?): the service runs whatever that checkout holds; for a server install a package (\`npm pack\`, then \`sudo npm install -g idsync-*.tgz\`)`);
  }
  return [exe];
}

/** Refuses paths a sandboxed system unit cannot use: PrivateTmp= gives it an empty /tmp of its own. */
function refuseTmp(paths: { what: string; path: string }[]): void {
  const bad = paths.filter((p) => under(p.path, TMP_DIRS));
  if (bad.length === 0) return;
  throw new IdsyncError('CONFIG_INVALID', `${bad.map((b) => `${b.what} ${b.path}`).join(', ')} ${bad.length > 1 ? 'are' : 'is'} under /tmp: the service runs with PrivateTmp=yes (its own empty /tmp) and would not find ${bad.length > 1 ? 'them' : 'it'}`, {
    hint: 'Keep a service\'s files in lasting places: the configuration in /etc/idsync, the data in /var/lib/idsync (systemd-tmpfiles also cleans /tmp). Or use a --user unit for a test.',
    details: { paths: bad.map((b) => b.path) },
  });
}

/** StateDirectory= for a data directory in /var/lib, else ReadWritePaths= and a chown step. */
function stateLines(dataDir: string, user: string, steps: string[]): string[] {
  const rel = path.relative('/var/lib', dataDir);
  if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) {
    // systemd creates it and hands it to User= at every start (also after `init` ran as root).
    return [`StateDirectory=${rel}`, 'StateDirectoryMode=0700', `WorkingDirectory=${q(dataDir)}`];
  }
  steps.push(`sudo chown -R ${user}: ${dataDir}    # the data directory is outside /var/lib, so systemd does not manage it`);
  return [`ReadWritePaths=${q(dataDir)}`, `WorkingDirectory=${q(dataDir)}`];
}

function sandbox(paths: string[], system: boolean): string[] {
  return [
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    // A path in a home directory stays visible (read-only, plus ReadWritePaths) instead of vanishing.
    `ProtectHome=${paths.some((p) => under(p, HOME_DIRS)) ? 'read-only' : 'yes'}`,
    ...(system ? ['PrivateTmp=yes', 'PrivateDevices=yes', 'ProtectKernelTunables=yes', 'ProtectControlGroups=yes', 'RestrictSUIDSGID=yes'] : []),
    'UMask=0077',
  ];
}

/** Every file the sync service reads that a unit's sandbox could hide. */
function configPaths(loaded: LoadedConfig): { what: string; path: string }[] {
  const out = [
    { what: 'the configuration file', path: loaded.file },
    { what: 'the data directory', path: loaded.dataDir },
  ];
  const base = path.dirname(loaded.file);
  for (const c of loaded.config.connectors) {
    if (c.type === 'ldif') out.push({ what: `the LDIF file of "${c.name}"`, path: path.resolve(base, c.path) });
    else if (c.tls.ca) out.push({ what: `the CA file of "${c.name}"`, path: path.resolve(base, c.tls.ca) });
  }
  const cloudCa = (loaded.config.cloud as { ca?: string }).ca;
  if (cloudCa) out.push({ what: 'the cloud CA file', path: path.resolve(base, cloudCa) });
  return out;
}

export function renderUnit(loaded: LoadedConfig, opts: UnitOptions = {}): string {
  return renderSyncUnit(loaded, opts).unit;
}

export function renderSyncUnit(loaded: LoadedConfig, opts: UnitOptions = {}): RenderedUnit {
  if (opts.user && opts.runAs) {
    throw new IdsyncError('CONFIG_INVALID', '--run-as applies to a system unit, not to a --user unit', { hint: 'A user unit runs as its user: drop --run-as, or drop --user and run as root.' });
  }
  const system = !opts.user;
  const user = system ? (opts.runAs ?? DEFAULT_SERVICE_USER) : undefined;
  if (user) checkUser(user);
  const paths = configPaths(loaded);
  if (system) refuseTmp(paths);
  const warnings: string[] = [];
  const steps: string[] = [];
  const exec = [...execWords(opts, system, warnings), '-c', loaded.file, 'serve', ...(opts.serveArgs ?? [])].map(q).join(' ');
  const confRel = path.relative('/etc', path.dirname(loaded.file));
  const confDir = confRel && !confRel.startsWith('..') && !path.isAbsolute(confRel) ? confRel : undefined;
  const lines = [
    '# Written by `idsync service install` (see docs/service.md in the idsync package).',
    '[Unit]',
    'Description=idsync sync service (directories to the cloud directory, password hash sync)',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    ...(user ? [`User=${user}`, `Group=${user}`] : []),
    ...(user ? stateLines(loaded.dataDir, user, steps) : [`ReadWritePaths=${q(loaded.dataDir)}`, `WorkingDirectory=${q(loaded.dataDir)}`]),
    ...(user && confDir ? [`ConfigurationDirectory=${confDir}`] : []),
    'Restart=on-failure',
    'RestartSec=5s',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=45',
    ...sandbox(paths.map((p) => p.path), system),
    '',
    '[Install]',
    `WantedBy=${opts.user ? 'default.target' : 'multi-user.target'}`,
    '',
  ];
  return { name: UNIT_NAME, unit: lines.join('\n'), ...(user ? { user } : {}), warnings, steps };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

/** A warning for a plain-HTTP listener reachable from other machines, or undefined. */
export function plainHttpWarning(host: string, what: string): string | undefined {
  if (LOOPBACK.test(host)) return undefined;
  return `${what} listens with plain HTTP on ${host}, reachable from other machines: tokens, secrets and password hashes would cross the network unencrypted. Keep it on 127.0.0.1 behind a TLS proxy (--public-url https://...)`;
}

/** The unit of `idsync cloud serve`. */
export function renderCloudUnit(opts: CloudUnitOptions = {}): RenderedUnit {
  const user = opts.runAs ?? DEFAULT_CLOUD_USER;
  checkUser(user);
  const data = path.resolve(opts.data ?? DEFAULT_CLOUD_DATA);
  refuseTmp([{ what: 'the cloud data directory', path: data }]);
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8080;
  const warnings: string[] = [];
  const steps: string[] = [];
  const httpWarning = plainHttpWarning(host, 'the cloud directory');
  if (httpWarning) warnings.push(httpWarning);
  const args = ['cloud', 'serve', '--data', data, '--host', host, '--port', String(port), ...(opts.publicUrl ? ['--public-url', opts.publicUrl] : [])];
  const exec = [...execWords(opts, true, warnings), ...args].map(q).join(' ');
  const lines = [
    '# Written by `idsync service install --cloud` (see docs/cloud-directory.md in the idsync package).',
    '[Unit]',
    'Description=idsync cloud directory (SCIM 2.0, tokens, password sign-in)',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    `User=${user}`,
    `Group=${user}`,
    // The first start creates the global administrator with IDSYNC_CLOUD_ADMIN_PASSWORD from here.
    'EnvironmentFile=-/etc/idsync/cloud.env',
    ...stateLines(data, user, steps),
    'Restart=on-failure',
    'RestartSec=5s',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=30',
    ...sandbox([data], true),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return { name: CLOUD_UNIT_NAME, unit: lines.join('\n'), user, warnings, steps };
}

/** A sysusers.d(5) entry for a system user whose home is its data directory. */
export function sysusersEntry(user: string, home: string, description: string): string {
  return `# Written by \`idsync service install --create-user\`; applied by \`systemd-sysusers\` (and at boot).\nu ${user} - "${description}" ${home}\n`;
}

export interface InstallResult {
  file: string;
  unit: string;
  /** The sysusers.d file written with --create-user. */
  sysusersFile?: string;
  warnings: string[];
  nextSteps: string[];
}

function write(file: string, text: string): void {
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text, { mode: 0o644 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new IdsyncError('CONFIG_INVALID', `cannot write ${file}: ${code ?? String(err)}`, {
      hint: code === 'EACCES' ? 'Run as root (sudo), or use --user for a user unit, or --output FILE / --output - to print it.' : 'Choose another --output.',
    });
  }
}

/**
 * Writes a rendered unit (default /etc/systemd/system/NAME, or the user unit dir with `user`) and,
 * with `createUser`, the sysusers.d entry of its user next to it (default /etc/sysusers.d/).
 */
export function installRendered(r: RenderedUnit, opts: { user?: boolean; output?: string; createUser?: boolean; home?: string } = {}): InstallResult {
  const unitDir = opts.user ? userUnitDir() : SYSTEM_UNIT_DIR;
  const file = path.resolve(opts.output ?? path.join(unitDir, r.name));
  const elsewhere = path.dirname(file) !== unitDir;
  const name = path.basename(file, '.service');
  const warnings = [...r.warnings];
  const steps: string[] = [];
  let sysusersFile: string | undefined;
  if (r.user) {
    if (opts.createUser) {
      sysusersFile = elsewhere ? path.join(path.dirname(file), `${name}.sysusers.conf`) : path.join(SYSUSERS_DIR, `${name}.conf`);
      write(sysusersFile, sysusersEntry(r.user, opts.home ?? '-', `idsync (${name})`));
      if (elsewhere) steps.push(`copy ${sysusersFile} to ${SYSUSERS_DIR}/${name}.conf`);
      steps.push(`sudo systemd-sysusers    # creates the system user ${r.user}`);
    } else if (!userExists(r.user)) {
      warnings.push(`the user ${r.user} does not exist yet: create it with --create-user (a sysusers.d entry), or \`sudo useradd --system --no-create-home --shell /usr/sbin/nologin ${r.user}\`, or name another with --run-as`);
    }
  }
  write(file, r.unit);
  const ctl = opts.user ? 'systemctl --user' : 'sudo systemctl';
  const nextSteps = [
    ...(opts.output && elsewhere ? [`copy ${file} to ${unitDir}/${path.basename(file)}`] : []),
    ...steps,
    ...r.steps,
    `${ctl} daemon-reload && ${ctl} enable --now ${name}`,
    ...(opts.user ? ['loginctl enable-linger "$USER"   # keep it running after you log out'] : []),
    `${ctl} status ${name}; journalctl ${opts.user ? '--user ' : ''}-u ${name} -f`,
  ];
  return { file, unit: r.unit, ...(sysusersFile ? { sysusersFile } : {}), warnings, nextSteps };
}

/** Writes the sync service's unit (see installRendered). */
export function installUnit(loaded: LoadedConfig, opts: UnitOptions & { output?: string; createUser?: boolean } = {}): InstallResult {
  const r = renderSyncUnit(loaded, opts);
  const rel = path.relative('/var/lib', loaded.dataDir);
  const home = rel && !rel.startsWith('..') ? loaded.dataDir : '-';
  return installRendered(r, { ...(opts.user ? { user: true } : {}), ...(opts.output ? { output: opts.output } : {}), ...(opts.createUser ? { createUser: true } : {}), home });
}
