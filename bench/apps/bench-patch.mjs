// For the "patched" variant: when LP_BENCH_PATCH=1, patches the hot `renderItem` through the runtime before the
// server reports ready, with a replacement that computes the same answer (the driver checks the bodies match).
const dist = new URL('../../dist/src/', import.meta.url);

let calls = 0;

/** How many times the replacement ran: the driver checks it moved, so "patched" really measured the patched path. */
export function patchedCalls() {
  return calls;
}

export async function applyBenchPatch() {
  if (process.env.LP_BENCH_PATCH !== '1') return;
  const { getRuntime } = await import(new URL('runtime/index.js', dist).href);
  const { defineLivepatch } = await import(new URL('index.js', dist).href);
  const runtime = getRuntime();
  runtime.loadPatch(
    defineLivepatch({
      name: 'bench-render-item',
      objects: [
        {
          module: 'livepatch/bench/apps/catalog.mjs',
          funcs: [
            {
              name: 'renderItem',
              replacement: function renderItem(item, who) {
                calls++;
                const price = (item.price / 100).toFixed(2);
                return JSON.stringify({
                  id: item.id,
                  name: item.name,
                  price,
                  tags: item.tags,
                  for: who.user,
                });
              },
            },
          ],
        },
      ],
    }),
  );
  if (!(await runtime.waitForTransition(10_000)))
    throw new Error('bench-patch: the transition did not finish');
  const patched = runtime.tree().patches.find((p) => p.name === 'bench-render-item');
  if (patched?.enabled !== true) throw new Error('bench-patch: the patch is not enabled');
}
