/**
 * Moved to web/secret-hash.ts (both consoles hash their accounts' secrets with it). This re-export
 * keeps the cloud's imports as they were while branches that edit them are merged; import from
 * web/ in new code.
 */
export * from '../../web/secret-hash.js';
