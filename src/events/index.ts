/** The event log: catalog, store and sinks. Emit with `log.emit(EVENTS.PHS_HEARTBEAT, { connector })`. */
export * from './catalog.js';
export * from './log.js';
export * from './redact.js';
export * from './since.js';
export * from './sinks.js';
