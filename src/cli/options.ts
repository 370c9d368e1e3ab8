/**
 * Option values more than one command group accepts, in a module of their own: a group imports
 * them without loading another group's libraries (commands/index.ts loads groups on demand).
 */

/** pino's levels, as `serve --log-level` and `service start --log-level` accept them. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
