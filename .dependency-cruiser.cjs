/**
 * The layering of idsync, checked by `npm run lint` (dependency-cruiser). docs/architecture.md
 * ("Layers") explains each rule; a rule here holds today, so a new arrow against it fails the lint.
 *
 * The sync side: every src/ folder except cloud/ (the cloud directory) and the composition roots
 * (cli/, demo/, app/) that put the two sides together.
 */
/** Folders of the sync service (everything an `idsync serve` runs). */
const SYNC = '^src/(agent|config|connectors|console|credentials|doctor|drsuapi|engine|events|ldap|passwords|rpc|rules|service|status|wizard)/';
/**
 * What both sides may share: errors (core/), the store runner (store/), the consoles' web safety
 * (web/), and the password hash transform (passwords/hash.ts), which the sync side computes and the
 * cloud verifies: the two must be the same code.
 */
const SHARED = ['^src/(core|store|web)/', '^src/passwords/hash\\.ts$'];
/** The typed API of both web consoles (the pages in webui/ are checked against it): types only. */
const CONSOLE_API_TYPES = '^src/console/api-types\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Files that import each other (also through others) cannot be read, tested or moved alone.',
      from: { path: '^(src|bin)/' },
      to: { circular: true },
    },
    {
      name: 'store-imports-no-feature',
      severity: 'error',
      comment: 'store/ knows the Migration type and the runner; app/migrations.ts assembles the modules\' lists.',
      from: { path: '^src/store/' },
      to: { path: '^src/', pathNot: '^src/(store|core)/' },
    },
    {
      name: 'core-imports-no-feature',
      severity: 'error',
      comment: 'core/ (errors, their catalog, attribute helpers) is the ground floor: it imports only itself.',
      from: { path: '^src/core/' },
      to: { path: '^src/', pathNot: '^src/core/' },
    },
    {
      name: 'cli-only-from-bin-and-cli',
      severity: 'error',
      comment: 'cli/ parses and prints; library code lives in the modules, so only bin/ and cli/ import cli/.',
      from: { pathNot: '^(bin|src/cli)/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'cloud-imports-only-shared',
      severity: 'error',
      comment: 'The cloud directory runs on its own (`idsync cloud serve`): of idsync it uses only the shared modules.',
      from: { path: '^src/cloud/' },
      to: { path: '^src/', pathNot: ['^src/cloud/', ...SHARED, CONSOLE_API_TYPES] },
    },
    {
      name: 'cloud-takes-only-types-of-the-console-api',
      severity: 'error',
      comment: 'The portal shares the console API\'s types, never its code.',
      from: { path: '^src/cloud/' },
      to: { path: CONSOLE_API_TYPES, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'sync-does-not-import-cloud',
      severity: 'error',
      comment: 'The sync service reaches the cloud directory over SCIM (connectors/cloud/), never through its code.',
      from: { path: SYNC },
      to: { path: '^src/cloud/' },
    },
    {
      name: 'app-only-from-composition',
      severity: 'error',
      comment: 'app/ assembles the modules (the migrations list): a module that imported it would import every other module.',
      from: { path: '^src/', pathNot: ['^src/(app|cli|demo)/', '^src/engine/context\\.ts$'] },
      to: { path: '^src/app/' },
    },
    {
      name: 'src-does-not-import-tests',
      severity: 'error',
      comment: 'Production code never depends on test helpers or fixtures.',
      from: { path: '^(src|bin)/' },
      to: { path: '^test/' },
    },
    {
      name: 'reader-thread-loads-no-cloud-client',
      severity: 'error',
      comment:
        "The full import's reader thread starts at each cycle's import: the cloud client and undici were two thirds of its start (connectors/directory.ts).",
      from: { path: '^src/engine/reader/read-worker\\.ts$' },
      to: { path: ['^src/connectors/(cloud|registry)', 'node_modules/undici/'], reachable: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing is a typo or a missing dependency.',
      from: { path: '^(src|bin)/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/' },
    // Type-only imports count: a type import still ties two modules together.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.d.ts'] },
  },
};
