/**
 * The real `idsync` command line run from the TypeScript sources (`node --import tsx
 * test/helpers/idsync-main.ts ...`), for tests that must not depend on a build in dist/.
 */
import { main } from '../../src/cli/main.js';

process.exitCode = await main();
