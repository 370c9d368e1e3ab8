/**
 * The sync service's defaults, apart from the service itself: the CLI's `service` commands and the
 * daemon helpers read them without loading the HTTP server and its libraries.
 */
import { parseDuration } from '../config/duration.js';
import { DEFAULT_SYNC_INTERVAL } from '../config/schema.js';

export const DEFAULT_INTERVAL_MS = parseDuration(DEFAULT_SYNC_INTERVAL);
export const DEFAULT_PORT = 7443;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_STOP_TIMEOUT_MS = 30_000;
