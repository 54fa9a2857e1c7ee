// Starts N worker threads one after the other and times each from `new Worker` to its first message; prints the
// median. The worker is a file (an `eval` worker runs no --import, so the loader would not be in it).
import { Worker } from 'node:worker_threads';

const n = Number(process.argv[2] ?? 15);
const times = [];
for (let i = 0; i < n; i++) {
  const t0 = process.hrtime.bigint();
  const w = new Worker(new URL('./worker-pool-worker.mjs', import.meta.url));
  await new Promise((resolve) => w.once('message', resolve));
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  await w.terminate();
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ medianMs: times[n >> 1] }));
