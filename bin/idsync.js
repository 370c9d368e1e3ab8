#!/usr/bin/env -S node --max-semi-space-size=32
// Entry point installed as `idsync`. The compiled CLI lives in dist/ (built by `npm install`'s prepare step).
// The flags on the first line are src/service/node-flags.ts's (why: there).
import { main } from '../dist/cli/main.js';

main().then((code) => {
  process.exitCode = code;
});
