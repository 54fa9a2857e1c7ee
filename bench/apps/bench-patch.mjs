// For the "patched" variant: when LP_BENCH_PATCH=1, patches the hot `renderItem` through the runtime (placeholder
// until the runtime's patch API is wired in).
export async function applyBenchPatch() {
  if (process.env.LP_BENCH_PATCH !== '1') return;
  throw new Error('bench-patch: not wired yet');
}
