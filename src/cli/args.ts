// Command-line parsing for `livepatch`: one command word, its positional arguments, and the shared options.

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface Options {
  pid: number[];
  name: string | undefined;
  all: boolean;
  json: boolean;
  follow: boolean;
  /** load: if the transition stalls, reverse it and remove the patch (as kpatch does). */
  revert: boolean;
  /** Seconds to wait for a transition (load, enable, disable, unload). */
  timeout: number;
  key: string | undefined;
  out: string | undefined;
  since: number | undefined;
  help: boolean;
  /** Everything after `--` (for `run`). */
  rest: string[];
}

export interface Parsed {
  command: string | undefined;
  positionals: string[];
  options: Options;
}

const VALUE_OPTIONS = new Set(['--pid', '--name', '--timeout', '--key', '--out', '--since']);
const FLAG_OPTIONS = new Set(['--all', '--json', '--follow', '-f', '--help', '-h', '--revert-on-stall']);

/** Parses argv (without node and the script). Throws UsageError naming the bad option. */
export function parseArgs(argv: string[]): Parsed {
  const o: Options = {
    pid: [],
    name: undefined,
    all: false,
    json: false,
    follow: false,
    revert: false,
    timeout: 15,
    key: undefined,
    out: undefined,
    since: undefined,
    help: false,
    rest: [],
  };
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i] as string;
    if (arg === '--') {
      o.rest = argv.slice(i + 1);
      break;
    }
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (VALUE_OPTIONS.has(arg)) {
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) throw new UsageError(`option '${arg}' needs a value`);
      }
      setValue(o, arg, value);
    } else if (FLAG_OPTIONS.has(arg)) {
      if (value !== undefined) throw new UsageError(`option '${arg}' takes no value`);
      if (arg === '--all') o.all = true;
      else if (arg === '--json') o.json = true;
      else if (arg === '--follow' || arg === '-f') o.follow = true;
      else if (arg === '--revert-on-stall') o.revert = true;
      else o.help = true;
    } else if (arg.startsWith('-') && arg !== '-') {
      throw new UsageError(`unknown option '${arg}'`);
    } else {
      positionals.push(arg);
    }
  }
  return { command: positionals.shift(), positionals, options: o };
}

function setValue(o: Options, opt: string, value: string): void {
  switch (opt) {
    case '--pid': {
      if (!/^[1-9][0-9]{0,9}$/.test(value))
        throw new UsageError(`'--pid' expects a process id, not '${value}'`);
      o.pid.push(Number(value));
      break;
    }
    case '--name':
      o.name = value;
      break;
    case '--timeout': {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0)
        throw new UsageError(`'--timeout' expects seconds > 0, not '${value}'`);
      o.timeout = n;
      break;
    }
    case '--since': {
      if (!/^[0-9]+$/.test(value))
        throw new UsageError(`'--since' expects a log sequence number, not '${value}'`);
      o.since = Number(value);
      break;
    }
    case '--key':
      o.key = value;
      break;
    case '--out':
      o.out = value;
      break;
  }
}
