// `Function.prototype.toString` giving an instrumented function's text as its author wrote it. Code that ships a
// function to run elsewhere (puppeteer's and playwright's `page.evaluate(fn)`, `new Worker(`(${fn})()`)`,
// `new Function(String(fn))`) would otherwise carry the prologue, whose `__lp$m` does not exist there, and code that
// reads parameter names from the text (DI containers) would see the temporaries of moved parameters.
//
// One wrapper per thread, installed with the loader: it calls the real toString, and only a text holding the slot
// ABI's `__lp$` goes to the instrumenter's inverse (instrument/source-text.ts), once per function. It is not a
// property of the function: `fn.toString === Function.prototype.toString` stays true, and the wrapper's own text is
// the native one's. `LIVEPATCH_SOURCE_TEXT=instrumented` leaves toString alone.

/** Set on the global once a copy of livepatch has wrapped toString in this thread: the others leave it be. */
const INSTALLED = Symbol.for('livepatch.sourceText');

/**
 * Wraps `Function.prototype.toString` (once per thread); `original` maps an instrumented function's text back to
 * the author's and may throw, which keeps the text as V8 has it. Returns false when it left toString alone
 * (another copy wrapped it already, or it cannot be replaced).
 */
export function installSourceText(original: (text: string) => string): boolean {
  const g = globalThis as Record<symbol, unknown>;
  if (g[INSTALLED] !== undefined) return false;
  const proto = Function.prototype;
  const descriptor = Object.getOwnPropertyDescriptor(proto, 'toString');
  const native: unknown = descriptor?.value;
  if (descriptor === undefined || typeof native !== 'function' || !descriptor.configurable) return false;
  // Taken now: the app may replace these later, and a toString must not depend on what it put there.
  const apply = Reflect.apply;
  const includes = String.prototype.includes;
  const texts = new WeakMap<object, string>();
  const { toString } = {
    // A method, as the native one is: no prototype, not a constructor, `name` 'toString', `length` 0.
    toString(this: unknown): string {
      if (this === toString) return apply(native, native, []) as string;
      // Throws the native TypeError for a `this` that is not a function.
      const text = apply(native, this, []) as string;
      if (!apply(includes, text, ['__lp$'])) return text;
      const fn = this as object;
      let written = texts.get(fn);
      if (written === undefined) {
        try {
          written = original(text);
        } catch {
          written = text;
        }
        texts.set(fn, written);
      }
      return written;
    },
  };
  Object.defineProperty(proto, 'toString', { ...descriptor, value: toString });
  g[INSTALLED] = toString;
  return true;
}
