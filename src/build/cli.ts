#!/usr/bin/env node
// `node dist/src/build/cli.js …`: the patch builder on its own, the same as `livepatch build …`.
import { runBuild } from './index.js';

process.exitCode = await runBuild(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
});
