// How symbol names are spelled (DESIGN.md §6): member keys, property chains, and the joins between them.

type N = any;

const IDENT = /^[A-Za-z_$][\w$]*$/;

/**
 * The spelling of a property key after a base: `.total`, `.#recalc`, `["foo-bar"]`, `[Symbol.iterator]`,
 * or undefined for a computed key that is not a string or a well-known symbol (the caller names it by position).
 */
export function keyPart(key: N, computed: boolean): string | undefined {
  if (!computed) {
    if (key.type === 'Identifier') return '.' + key.name;
    if (key.type === 'PrivateIdentifier') return '.#' + key.name;
    if (key.type === 'Literal') return literalPart(key.value);
    return undefined;
  }
  if (key.type === 'Literal' && (typeof key.value === 'string' || typeof key.value === 'number')) {
    return literalPart(key.value);
  }
  if (key.type === 'TemplateLiteral' && key.expressions.length === 0)
    return literalPart(key.quasis[0].value.cooked);
  // Well-known symbols: `[Symbol.iterator]`, `[Symbol.asyncIterator]`, …
  if (
    key.type === 'MemberExpression' &&
    !key.computed &&
    key.object.type === 'Identifier' &&
    key.object.name === 'Symbol' &&
    key.property.type === 'Identifier'
  ) {
    return `[Symbol.${key.property.name}]`;
  }
  return undefined;
}

function literalPart(value: unknown): string {
  const s = String(value);
  return IDENT.test(s) ? '.' + s : `[${JSON.stringify(s)}]`;
}

/** Joins a base name and a key part; with no base, a leading dot is dropped (`.list` alone is `list`). */
export function joinName(base: string | undefined, part: string): string {
  if (base === undefined || base === '') return part.startsWith('.') ? part.slice(1) : part;
  return base + part;
}

/** The name of an assignment target such as `exports.foo`, `Foo.prototype.bar`, `this.x`; else undefined. */
export function targetName(node: N): string | undefined {
  switch (node.type) {
    case 'Identifier':
      return node.name;
    case 'ThisExpression':
      return 'this';
    case 'MemberExpression': {
      const base = targetName(node.object);
      if (base === undefined) return undefined;
      if (!node.computed) {
        return node.property.type === 'PrivateIdentifier'
          ? `${base}.#${node.property.name}`
          : `${base}.${node.property.name}`;
      }
      const part = keyPart(node.property, true);
      return part === undefined ? undefined : joinName(base, part);
    }
    default:
      return undefined;
  }
}
