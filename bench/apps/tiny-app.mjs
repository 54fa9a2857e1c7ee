// Benchmark app for the loader's fixed cost (bench/startup-compile.mjs --app): one ES module with one function, so
// that what a start under the loader adds is the loader itself. Prints its own CPU time, as startup-app.mjs does.
export function add(a, b) {
  return a + b;
}

const cpu = process.cpuUsage();
console.log(JSON.stringify({ sum: add(1, 2), cpuMs: (cpu.user + cpu.system) / 1000 }));
