// Benchmark app: a node:http server running a few app functions per request; prints "listening <port>" when ready.
import { createServer } from 'node:http';
import { authenticate, loadItem, parseRoute, renderItem } from './catalog.mjs';
import { applyBenchPatch, patchedCalls } from './bench-patch.mjs';

function handle(req, res) {
  // For the benchmark driver: the server's own CPU time, so it can report CPU per request beside req/s.
  if (req.url === '/__cpu') {
    res.end(JSON.stringify({ ...process.cpuUsage(), patchedCalls: patchedCalls() }));
    return;
  }
  // For bench/idle-cost.mjs (run with --expose-gc): a full collection, so that every server starts the counted
  // window with an empty young generation and its collections fall on the same requests.
  if (req.url === '/__gc') {
    globalThis.gc?.();
    res.end('{}');
    return;
  }
  const route = parseRoute(req.url);
  if (route.parts[0] !== 'items' || route.parts.length !== 2) {
    res.statusCode = 404;
    res.end('not found');
    return;
  }
  const who = authenticate(req.headers);
  const item = loadItem(Number(route.parts[1]));
  const body = renderItem(item, who);
  res.setHeader('content-type', 'application/json');
  res.end(body);
}

const server = createServer(handle);
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', async () => {
  await applyBenchPatch();
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
