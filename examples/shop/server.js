// The demo's shop API: GET /quote?item=book&qty=2 answers a price quote as JSON.
import http from 'node:http';
import { quote } from './pricing.js';

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://shop');
  if (url.pathname !== '/quote') {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    return;
  }
  try {
    const body = quote(url.searchParams.get('item') ?? '', Number(url.searchParams.get('qty') ?? '1'));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  } catch (e) {
    // Bad input (RangeError) is the client's fault; anything else is ours.
    const status = e instanceof RangeError ? 400 : 500;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: e.message }));
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  console.log(`shop listening on http://127.0.0.1:${server.address().port}`);
});
