/**
 * Exit codes and the one mapping from error codes to them, both defined with the error catalog
 * (src/core/error-catalog.ts) so that docs/errors.md lists them together.
 */
export { EXIT, exitCodeFor } from '../core/error-catalog.js';
