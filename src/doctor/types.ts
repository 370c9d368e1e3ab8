/** What every doctor check returns, and what it gets. See docs/doctor.md. */
import type { LoadedConfig } from '../config/load.js';
import type { EngineContext } from '../engine/context.js';

export type FindingStatus = 'ok' | 'warning' | 'error';

export interface Finding {
  /** The check that produced it: connectivity, credentials, last-cycle, password-heartbeat, ... */
  check: string;
  /** What it is about (a connector name, a URL, the data directory), when a check has several. */
  target?: string;
  status: FindingStatus;
  /** The event ID an administrator finds for the same problem in `idsync events`. */
  eventId?: number;
  message: string;
  /** Why, in plain words (problems only). */
  cause?: string;
  /** What to do: the command to run (problems only). */
  fix?: string;
}

export interface DoctorContext {
  loaded: LoadedConfig;
  ctx: EngineContext;
  /** Clock (ms), for tests. */
  now: number;
  /** The service's cycle interval (the running service's, else the default or --interval). */
  intervalMs: number;
  /** Whether `idsync service` (pid file) or a reachable service is running. */
  serviceRunning: boolean;
  /** Certificates expiring within this many days are a warning. */
  certWarnDays: number;
  /** Network timeout of the clock and certificate probes. */
  probeTimeoutMs: number;
}

export interface DoctorCheck {
  name: string;
  run(d: DoctorContext): Promise<Finding[]>;
}
