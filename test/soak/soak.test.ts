// A short soak on each fixture app (the CI version of bench/soak/run.mjs): disable/enable cycles under load over
// the control socket, with no failed request, no memory growth, and the transition times reported.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSoak, type AppKind } from '../../bench/soak/driver.js';

const MB = 1024 * 1024;

for (const kind of ['express', 'fastify'] as AppKind[]) {
  test(`${kind}: 100 disable/enable cycles under load — no failed request, no memory growth`, async (t) => {
    // 230 warm-up cycles first: the JIT settles and the event log's ring (2,000 lines, 9 a cycle) is full.
    const r = await runSoak({ kind, cycles: 100, warmup: 230, connections: 8, samples: 10 });
    t.diagnostic(
      `${r.node} ${r.driver}: ${r.load.requests} requests; enable p50 ${r.enableMs.p50.toFixed(1)} ms ` +
        `p99 ${r.enableMs.p99.toFixed(1)} ms; disable p50 ${r.disableMs.p50.toFixed(1)} ms p99 ` +
        `${r.disableMs.p99.toFixed(1)} ms; heap ${(r.memory.heapGrowth / 1024).toFixed(0)} KiB ` +
        `(${r.memory.heapPerCycle.toFixed(0)} B/cycle), rss ${(r.memory.rssGrowth / MB).toFixed(1)} MiB`,
    );
    assert.equal(r.load.non2xx + r.load.errors + r.load.timeouts, 0, JSON.stringify(r.load));
    assert.ok(r.load.requests > 200, `only ${r.load.requests} requests`);
    // Both universes served requests while the cycles ran: the patch really went in and out under load.
    assert.ok(r.load.patchedBodies > 0 && r.load.originalBodies > 0, JSON.stringify(r.load));
    // Heap after a full GC, with nothing legitimate left to grow. A patch application left behind each cycle
    // (a factory's closure and its entries: ~23 KiB measured with a deliberately leaky patch) passes 1 MiB in
    // 100 cycles; sampling noise over so few cycles is up to ±2 KiB a cycle in slope, ±300 KiB in growth.
    assert.ok(r.memory.heapGrowth < 1 * MB, `heap grew ${r.memory.heapGrowth} bytes`);
    assert.ok(r.memory.heapPerCycle < 6 * 1024, `heap grows ${r.memory.heapPerCycle} bytes a cycle`);
    // RSS moves by allocator and GC decisions (±6 MiB seen between runs): only a gross native leak fails here.
    assert.ok(r.memory.rssGrowth < 24 * MB, `rss grew ${r.memory.rssGrowth} bytes`);
    // No transition should take long: requests are a few ms each.
    assert.ok(r.enableMs.p50 < 500 && r.disableMs.p50 < 500, JSON.stringify([r.enableMs, r.disableMs]));
  });
}
