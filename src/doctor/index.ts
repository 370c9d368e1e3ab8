/**
 * `idsync doctor`: the troubleshooter. Each check is a small module in checks/ returning findings;
 * this runs them all (each isolated: a check that throws becomes an error finding, never a crash)
 * and says whether everything is ok. Findings never contain a secret. See docs/doctor.md.
 */
import type { LoadedConfig } from '../config/load.js';
import { openContext } from '../engine/context.js';
import { redactString } from '../events/redact.js';
import { daemonState } from '../service/daemon.js';
import { parseDuration } from '../config/duration.js';
import { certificatesCheck } from './checks/certificates.js';
import { clockCheck } from './checks/clock.js';
import { connectivityCheck } from './checks/connectivity.js';
import { connectorSpacesCheck } from './checks/connector-spaces.js';
import { cycleCheck } from './checks/cycle.js';
import { deletionsCheck } from './checks/deletions.js';
import { diskCheck } from './checks/disk.js';
import { drsCheck } from './checks/drs.js';
import { heartbeatCheck } from './checks/heartbeat.js';
import { outboxCheck } from './checks/outbox.js';
import type { DoctorCheck, DoctorContext, Finding } from './types.js';

export type { DoctorCheck, DoctorContext, Finding, FindingStatus } from './types.js';
export { formatFindings } from './format.js';

/** In output order. To add a check: a module in checks/ and one line here (and docs/doctor.md). */
export const CHECKS: DoctorCheck[] = [connectivityCheck, certificatesCheck, clockCheck, cycleCheck, connectorSpacesCheck, deletionsCheck, heartbeatCheck, outboxCheck, drsCheck, diskCheck];

export interface DoctorOptions {
  /** Cycle interval for the "last cycle too old" rule (default: the running service's, else sync.interval). */
  intervalMs?: number;
  certWarnDays?: number;
  probeTimeoutMs?: number;
  now?: number;
  /** Only these checks (by name). */
  only?: string[];
}

export interface DoctorReport {
  ok: boolean;
  findings: Finding[];
}

export async function runDoctor(loaded: LoadedConfig, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const state = daemonState(loaded.dataDir);
  const ctx = openContext(loaded, { readOnly: true });
  try {
    const d: DoctorContext = {
      loaded,
      ctx,
      now: opts.now ?? Date.now(),
      intervalMs: opts.intervalMs ?? state.info?.intervalMs ?? parseDuration(loaded.config.sync.interval),
      serviceRunning: state.running,
      certWarnDays: opts.certWarnDays ?? 30,
      probeTimeoutMs: opts.probeTimeoutMs ?? 5000,
    };
    const checks = opts.only ? CHECKS.filter((c) => opts.only!.includes(c.name)) : CHECKS;
    const results = await Promise.all(
      checks.map(async (c): Promise<Finding[]> => {
        try {
          return await c.run(d);
        } catch (err) {
          return [{ check: c.name, status: 'error', message: `the check itself failed: ${err instanceof Error ? err.message : String(err)}`, fix: 'Report this as a bug, with the output of `idsync doctor --json`.' }];
        }
      }),
    );
    // Belt and braces: no text leaves the doctor without secret scrubbing.
    const findings = results.flat().map((f) => ({
      ...f,
      message: redactString(f.message),
      ...(f.cause ? { cause: redactString(f.cause) } : {}),
    }));
    return { ok: findings.every((f) => f.status === 'ok'), findings };
  } finally {
    ctx.close();
  }
}
