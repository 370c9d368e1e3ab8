/**
 * `idsync service install`: a systemd unit that runs `idsync serve` in the foreground
 * (Type=simple), restarted on failure, sandboxed, with a stop timeout above the service's own
 * drain time (30 s). systemctl is never called: the command prints the next steps.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { IdsyncError } from '../core/errors.js';
import { DEFAULT_ENTRY } from './daemon.js';

export const UNIT_NAME = 'idsync.service';
export const SYSTEM_UNIT_DIR = '/etc/systemd/system';
export const userUnitDir = (): string => path.join(process.env.XDG_CONFIG_HOME || path.join(homedir(), '.config'), 'systemd', 'user');

export interface UnitOptions {
  /** A user unit (~/.config/systemd/user), for `systemctl --user`. */
  user?: boolean;
  /** User= of a system unit. */
  runAs?: string;
  /** Extra `serve` arguments, e.g. ['--interval', '10m']. */
  serveArgs?: string[];
  node?: string;
  entry?: string;
}

/** Quotes an ExecStart word for systemd when it needs it. */
function q(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function renderUnit(loaded: LoadedConfig, opts: UnitOptions = {}): string {
  if (opts.user && opts.runAs) {
    throw new IdsyncError('CONFIG_INVALID', '--run-as applies to a system unit, not to a --user unit', { hint: 'A user unit runs as its user: drop --run-as, or drop --user and run as root.' });
  }
  if (opts.runAs !== undefined && !/^[a-z_][a-z0-9_-]*\$?$/i.test(opts.runAs)) {
    throw new IdsyncError('CONFIG_INVALID', `"${opts.runAs}" is not a user name`, { hint: 'Pass an existing system user, e.g. --run-as idsync.' });
  }
  const entry = path.resolve(opts.entry ?? DEFAULT_ENTRY);
  const exec = [opts.node ?? process.execPath, entry, '-c', loaded.file, 'serve', ...(opts.serveArgs ?? [])].map(q).join(' ');
  const lines = [
    '# Written by `idsync service install`. See docs/service.md.',
    '[Unit]',
    'Description=idsync sync service (directories to the cloud directory, password hash sync)',
    `Documentation=file://${path.resolve(path.dirname(entry), '..', 'docs', 'service.md')}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    `WorkingDirectory=${q(path.dirname(loaded.file))}`,
    ...(opts.runAs ? [`User=${opts.runAs}`] : []),
    'Restart=on-failure',
    'RestartSec=5s',
    'KillSignal=SIGTERM',
    'TimeoutStopSec=45',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ReadWritePaths=${q(loaded.dataDir)}`,
    'PrivateTmp=yes',
    'UMask=0077',
    '',
    '[Install]',
    `WantedBy=${opts.user ? 'default.target' : 'multi-user.target'}`,
    '',
  ];
  return lines.join('\n');
}

export interface InstallResult {
  file: string;
  unit: string;
  nextSteps: string[];
}

/** Writes the unit (default /etc/systemd/system/idsync.service, or the user unit dir with `user`). */
export function installUnit(loaded: LoadedConfig, opts: UnitOptions & { output?: string } = {}): InstallResult {
  const unit = renderUnit(loaded, opts);
  const file = path.resolve(opts.output ?? path.join(opts.user ? userUnitDir() : SYSTEM_UNIT_DIR, UNIT_NAME));
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, unit, { mode: 0o644 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new IdsyncError('CONFIG_INVALID', `cannot write ${file}: ${code ?? String(err)}`, {
      hint: code === 'EACCES' ? 'Run as root (sudo), or use --user for a user unit, or --output FILE / --output - to print it.' : 'Choose another --output.',
    });
  }
  const name = path.basename(file, '.service');
  const ctl = opts.user ? 'systemctl --user' : 'sudo systemctl';
  const nextSteps = [
    ...(opts.output && path.dirname(file) !== (opts.user ? userUnitDir() : SYSTEM_UNIT_DIR)
      ? [`copy ${file} to ${opts.user ? userUnitDir() : SYSTEM_UNIT_DIR}/${path.basename(file)}`]
      : []),
    `${ctl} daemon-reload && ${ctl} enable --now ${name}`,
    ...(opts.user ? ['loginctl enable-linger "$USER"   # keep it running after you log out'] : []),
    `${ctl} status ${name}; journalctl ${opts.user ? '--user ' : ''}-u ${name} -f`,
  ];
  return { file, unit, nextSteps };
}
