#!/usr/bin/env node
// Standalone entry for `livepatch kernel …` (node dist/src/kernel/cli.js list): used by tests and the qemu initramfs.
import { runKernel } from './index.js';

const code = await runKernel(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
});
process.exitCode = code;
