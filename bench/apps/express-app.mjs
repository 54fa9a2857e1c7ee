// Benchmark app: an Express app (router, middleware, params, JSON) over the same catalog; prints "listening <port>".
import express from 'express';
import { authenticate, loadItem, renderItem } from './catalog.mjs';
import { applyBenchPatch, patchedCalls } from './bench-patch.mjs';

const app = express();
// For the benchmark driver: the server's own CPU time, so it can report CPU per request beside req/s.
app.get('/__cpu', (_req, res) =>
  res.send(JSON.stringify({ ...process.cpuUsage(), patchedCalls: patchedCalls() })),
);
// For bench/idle-cost.mjs (run with --expose-gc): a full collection before the counted window.
app.get('/__gc', (_req, res) => {
  globalThis.gc?.();
  res.send('{}');
});
app.disable('x-powered-by');
app.disable('etag');
app.use(function who(req, _res, next) {
  req.who = authenticate(req.headers);
  next();
});
const router = express.Router();
router.get('/items/:id', function showItem(req, res) {
  const item = loadItem(Number(req.params.id));
  res.type('application/json').send(renderItem(item, req.who));
});
router.get('/health', (_req, res) => res.send('ok'));
app.use(router);

const server = app.listen(0, '127.0.0.1', async () => {
  await applyBenchPatch();
  console.log(`listening ${server.address().port}`);
});
server.keepAliveTimeout = 30_000;
process.on('SIGTERM', () => server.close(() => process.exit(0)));
