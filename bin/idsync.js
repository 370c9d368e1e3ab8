#!/usr/bin/env node
// Entry point installed as `idsync`. The compiled CLI lives in dist/ (built by `npm install`'s prepare step).
import { main } from '../dist/cli/main.js';

main().then((code) => {
  process.exitCode = code;
});
