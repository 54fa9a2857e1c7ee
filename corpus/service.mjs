// The corpus's service: a node:http server answering GET /?in=INPUT with what the case's probe makes of INPUT.
// The probe (argv[2]) uses the vulnerable package and returns { result, exploited }; the server only transports it.
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const { probe } = await import(pathToFileURL(process.argv[2] ?? '').href);

const server = http.createServer(async (req, res) => {
  const input = new URL(req.url ?? '/', 'http://x').searchParams.get('in') ?? '';
  let body;
  try {
    body = await probe(input);
  } catch (e) {
    // A thrown probe is an answer too (some fixes make bad input throw); it must never take the server down.
    body = { result: { threw: String(e && e.message) }, exploited: false };
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
