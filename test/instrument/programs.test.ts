// Real programs, instrumented throughout: eslint and prettier must print exactly what they print uninstrumented.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import { distRoot, fixture, repoRoot, tmpProject } from '../helpers.js';

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const hasRegisterHooks = major > 22 || (major === 22 && minor >= 15);

const files = {
  'bad.js': 'const a = 1;\nlet unused = 2;\nfunction f(x) { return x == null ? eval("1") : undefinedVar; }\n',
  'fmt.ts': 'const  x = {a:1,\nb:[1,2,3].map(v=>v*2)}\nclass A { #x = 1; get y() { return this.#x } }\n',
};
const rules =
  '{"no-unused-vars":"error","no-undef":"error","eqeqeq":"error","no-eval":"error","prefer-const":"error"}';

it(
  'instrument: eslint and prettier, instrumented, behave exactly as before',
  { skip: !hasRegisterHooks && 'needs module.registerHooks (node >= 22.15)' },
  (t) => {
    const project = tmpProject(files);
    t.after(project.cleanup);
    const programs: [string, string[]][] = [
      ['node_modules/eslint/bin/eslint.js', ['--no-config-lookup', '--rule', rules, 'bad.js']],
      ['node_modules/prettier/bin/prettier.cjs', ['fmt.ts']],
    ];
    for (const [bin, args] of programs) {
      const run = (hooks: string[]) =>
        spawnSync(process.execPath, [...hooks, join(repoRoot, bin), ...args], {
          cwd: project.dir,
          encoding: 'utf8',
          env: { ...process.env, LP_INSTRUMENT: join(distRoot, 'src/instrument/index.js') },
          timeout: 60_000,
        });
      const plain = run([]);
      const instrumented = run(['--import', fixture('instrument', 'instrument-hooks.mjs')]);
      assert.match(instrumented.stderr, /instrumented \d+ modules, \d{3,} functions/, bin);
      assert.ok(plain.stdout.length > 20, `${bin} printed: ${plain.stdout}${plain.stderr}`);
      assert.equal(instrumented.stdout, plain.stdout, bin);
      assert.equal(instrumented.status, plain.status, bin);
    }
  },
);
