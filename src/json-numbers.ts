/**
 * JSON numbers that a JavaScript number cannot hold: integers beyond ±2^53 (a PostgreSQL bigint id such
 * as 9007199254740993 would silently become ...992) and magnitudes beyond ~1.8e308 (which become
 * Infinity, then `null`). A schema channel re-serialises what it parses, so such a payload is refused
 * with this literal named rather than delivered altered. Raw channels never parse and are unaffected.
 */

// Cheap pre-check: only a run of 16+ digits or a 3-digit exponent can be inexact.
const SUSPECT = /\d{16}|[eE][+-]?\d{3}/;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const QUOTE = 34;
const BACKSLASH = 92;

/** The first number literal in valid JSON `text` that would not survive a parse exactly, if any. */
export function inexactNumber(text: string): string | undefined {
  if (!SUSPECT.test(text)) return undefined;
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

// Fractions round in the 17th significant digit, as every JSON parser's doubles do; that is accepted.
function lossy(literal: string): boolean {
  const value = Number(literal);
  if (!Number.isFinite(value)) return true;
  if (/[.eE]/.test(literal)) return false;
  return BigInt(literal) !== BigInt(value);
}
