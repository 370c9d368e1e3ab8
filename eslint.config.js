import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.scratch/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // better-sqlite3 12 aborts on Node 24 and 13 crashes on Node 20: only src/store/sqlite-driver.ts
      // picks the one made for the running Node. Types may still come from 'better-sqlite3'.
      '@typescript-eslint/no-restricted-imports': ['error', { paths: [
        { name: 'better-sqlite3', message: "Load SQLite with { Sqlite } from src/store/sqlite-driver.ts (it picks the driver made for this Node).", allowTypeImports: true },
        { name: 'better-sqlite3-node22', message: 'Load SQLite with { Sqlite } from src/store/sqlite-driver.ts.', allowTypeImports: true },
      ] }],
    },
  },
  {
    // The dependency rules (.dependency-cruiser.cjs) are CommonJS, as dependency-cruiser loads them.
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
  },
  {
    // The consoles' pages run in the browser.
    files: ['webui/**/*.js'],
    languageOptions: { globals: { document: 'readonly', window: 'readonly', location: 'readonly', fetch: 'readonly', URLSearchParams: 'readonly', Node: 'readonly', Event: 'readonly', HTMLElement: 'readonly', EventSource: 'readonly' } },
  },
);
