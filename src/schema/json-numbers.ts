/**
 * JSON numbers that a JavaScript number cannot hold: integers beyond ±2^53 (a PostgreSQL bigint id such
 * as 9007199254740993 would silently become ...992) and magnitudes beyond ~1.8e308 (which become
 * Infinity, then `null`). A schema channel re-serialises what it parses, so such a payload is refused
 * with this literal named rather than delivered altered. Raw channels never parse and are unaffected.
 */

// Every integer below 2^53 is exact, so only a parsed magnitude at or above it (or Infinity) can hide a loss.
const EXACT_BELOW = 2 ** 53;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const QUOTE = 34;
const BACKSLASH = 92;

/**
 * The first number literal in valid JSON `text` that did not survive `JSON.parse` exactly, if any.
 * `parsed` is that parse: the text is scanned only when it holds a number that large, so the common
 * payload costs one walk of the parsed value.
 */
export function inexactNumber(text: string, parsed: unknown): string | undefined {
  if (!hasLargeNumber(parsed)) return undefined;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      // Skip the string: digits inside strings are text, not numbers.
      for (i++; i < text.length && text.charCodeAt(i) !== QUOTE; i++) if (text.charCodeAt(i) === BACKSLASH) i++;
      continue;
    }
    if (code !== 45 && (code < 48 || code > 57)) continue;
    NUMBER.lastIndex = i;
    const literal = NUMBER.exec(text)?.[0];
    if (literal === undefined) continue;
    if (lossy(literal)) return literal;
    i += literal.length - 1;
  }
  return undefined;
}

// Iterative: JSON.parse accepts nesting deep enough to overflow a recursive walk.
function hasLargeNumber(root: unknown): boolean {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'number') {
      if (!(Math.abs(value) < EXACT_BELOW)) return true;
    } else if (Array.isArray(value)) {
      for (const item of value) if (typeof item === 'object' || typeof item === 'number') stack.push(item);
    } else if (typeof value === 'object' && value !== null) {
      for (const item of Object.values(value))
        if (typeof item === 'object' || typeof item === 'number') stack.push(item);
    }
  }
  return false;
}

// Fractions round in the 17th significant digit, as every JSON parser's doubles do; that is accepted.
function lossy(literal: string): boolean {
  const value = Number(literal);
  if (!Number.isFinite(value)) return true;
  if (/[.eE]/.test(literal)) return false;
  return BigInt(literal) !== BigInt(value);
}

/**
 * Like {@link inexactNumber}, for one top-level field of a JSON object text (a publish frame's `payload`):
 * numbers elsewhere in the text (an `id` past 2^53) do not count. `parsedField` is that field as parsed;
 * only when it holds a large number is the text parsed again, with a reviver that sees each literal.
 */
export function inexactNumberInField(text: string, field: string, parsedField: unknown): string | undefined {
  if (!hasLargeNumber(parsedField)) return undefined;
  const lossyLiterals = new Map<object, string>();
  const parsed: unknown = JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => {
    if (typeof value !== 'number' || context?.source === undefined || !lossy(context.source)) return value;
    const marker = {};
    lossyLiterals.set(marker, context.source);
    return marker;
  });
  const stack: unknown[] = [(parsed as Record<string, unknown>)[field]];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null) continue;
    const literal = lossyLiterals.get(value);
    if (literal !== undefined) return literal;
    for (const item of Array.isArray(value) ? value : Object.values(value)) stack.push(item);
  }
  return undefined;
}
