// The real npm packages whose own test suites run under the livepatch loader: names, pinned versions, how to run them.

export interface RealPackage {
  /** npm name. */
  name: string;
  /** Exact version fetched with `npm pack`; pinned so results are comparable run to run. */
  version: string;
  /**
   * How the package runs its tests (its own `test` script, without lint, coverage or type tests): tape, node:test,
   * or `node` running one script of plain `assert`s (it passes by exiting 0).
   */
  runner: 'tape' | 'node-test' | 'node';
  /** Test files, as a directory inside the package and a file-name suffix (what its glob selects). */
  testDir: string;
  testSuffix: string;
  /**
   * devDependencies the test files require: `name` takes the range from the package's own package.json,
   * `name@range` overrides it (used only where the registry has no version in that range).
   */
  testDeps: string[];
  /** What the package's own script is, for docs/realworld.md. */
  script: string;
  /** Run by `npm test` (false: only with LIVEPATCH_REALWORLD_ALL=1, for suites too slow for the CI budget). */
  ci: boolean;
  /**
   * One function patched through the runtime: `module` and `func` name it as the symbol table does, `call` is a JS
   * expression over `pkg` (the package's main export) that reaches it.
   */
  patch: { module: string; func: string; call: string };
  /** The suite asserts functions' source text: it must fail when toString shows the prologues (a check of the check). */
  readsSourceText?: boolean;
}

export const packages: RealPackage[] = [
  {
    name: 'qs',
    version: '6.17.1',
    runner: 'tape',
    testDir: 'test',
    testSuffix: '.js',
    testDeps: [
      'tape@^5.10.2',
      'es-value-fixtures',
      'for-each',
      'has-bigints',
      'has-override-mistake',
      'has-property-descriptors',
      'has-proto',
      'has-symbols',
      'iconv-lite',
      'mock-property',
      'object-inspect',
      'safer-buffer',
    ],
    script: "tape 'test/**/*.js'",
    ci: true,
    patch: { module: 'qs/lib/parse.js', func: 'parseValues', call: "pkg.parse('a=b&c[d]=e')" },
  },
  {
    name: 'minimist',
    version: '1.2.8',
    runner: 'tape',
    testDir: 'test',
    testSuffix: '.js',
    testDeps: ['tape'],
    script: "tape 'test/**/*.js'",
    ci: true,
    patch: { module: 'minimist/index.js', func: 'isNumber', call: "pkg(['--n', '5', '-x'])" },
  },
  {
    name: 'fast-uri',
    version: '3.1.9',
    runner: 'tape',
    testDir: 'test',
    testSuffix: '.test.js',
    testDeps: ['tape', 'ajv'],
    script: "tape 'test/**/*.js'",
    ci: true,
    patch: { module: 'fast-uri/index.js', func: 'resolve', call: "pkg.resolve('http://a/b/c', '../d')" },
  },
  {
    name: 'secure-json-parse',
    version: '4.1.1',
    runner: 'tape',
    testDir: 'test',
    testSuffix: '.test.js',
    testDeps: ['tape'],
    script: 'tape "test/*.test.js"',
    ci: true,
    patch: { module: 'secure-json-parse/index.js', func: '_parse', call: 'pkg.parse(\'{"a":1}\')' },
  },
  {
    name: '@fastify/proxy-addr',
    version: '5.1.3',
    runner: 'node-test',
    testDir: 'test',
    testSuffix: '.test.js',
    testDeps: [],
    script: 'node --test',
    ci: true,
    patch: {
      module: '@fastify/proxy-addr/index.js',
      func: 'compile',
      call: "typeof pkg.compile('loopback')",
    },
  },
  {
    // Its test asserts the exact source text of a function it serialises: under the loader that text must be the
    // one the author wrote (docs/loader.md, Function source text).
    name: 'tosource',
    version: '1.0.0',
    runner: 'node',
    testDir: '.',
    testSuffix: 'test.js',
    testDeps: [],
    script: 'node test.js',
    ci: true,
    readsSourceText: true,
    patch: {
      module: 'tosource/tosource.js',
      func: 'module.exports>walk',
      call: "pkg({ a: [1, 'b'], f: function (x) { return x } })",
    },
  },
  {
    name: 'find-my-way',
    version: '9.10.2',
    runner: 'node-test',
    testDir: 'test',
    testSuffix: '.test.js',
    testDeps: ['rfdc', 'proxyquire'],
    script: 'borp (node:test over test/**/*.test.js)',
    ci: false,
    patch: {
      module: 'find-my-way/index.js',
      func: 'Router.prototype.find',
      call: "pkg().find('GET', '/') === null",
    },
  },
  {
    name: '@pinojs/redact',
    version: '0.4.0',
    runner: 'node-test',
    testDir: 'test',
    testSuffix: '.test.js',
    testDeps: ['fast-redact'],
    script: 'node --test',
    ci: true,
    patch: {
      module: '@pinojs/redact/index.js',
      func: 'parsePath',
      call: "pkg({ paths: ['a.b'] })({ a: { b: 1 } })",
    },
  },
];
