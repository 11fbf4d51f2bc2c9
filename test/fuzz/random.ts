/**
 * The fuzzers' only source of randomness: a seeded PRNG (sfc32), so a failure is replayed with
 * `FUZZ_SEED=<seed> bun test test/fuzz.test.ts`. `FUZZ_SCALE` multiplies every count (the soak uses ~20).
 */

/** The run's seed: `FUZZ_SEED` when set (decimal or 0x-hex), otherwise a fresh one that the suite prints. */
export const SEED: number = parseSeed(process.env['FUZZ_SEED']) ?? crypto.getRandomValues(new Uint32Array(1))[0] ?? 1;

/** Multiplier for counts and rounds: `FUZZ_SCALE` (default 1), so the soak reuses the same tests. */
export const SCALE: number = Math.max(1, Number(process.env['FUZZ_SCALE'] ?? '1') || 1);

/** `base` scaled by FUZZ_SCALE, rounded. */
export const scaled = (base: number) => Math.round(base * SCALE);

function parseSeed(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const value = Number(text.trim());
  if (!Number.isSafeInteger(value)) throw new Error(`FUZZ_SEED must be an integer, got "${text}"`);
  return value >>> 0;
}

/** A deterministic random source with the few draws the generators need. */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max] (inclusive). */
  int(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** Picks by weight: `[[3, 'a'], [1, 'b']]` gives 'a' three times as often. */
  weighted<T>(options: readonly (readonly [number, T])[]): T;
  bytes(length: number): Uint8Array;
}

/**
 * A PRNG for one fuzz kind. Each kind derives its own stream from the seed and its name, so changing
 * how many draws one kind makes never changes what another kind generates.
 */
export function rngFor(kind: string, seed = SEED): Rng {
  let h = 2166136261 ^ seed;
  for (const char of kind) h = Math.imul(h ^ (char.codePointAt(0) ?? 0), 16777619);
  let a = seed >>> 0;
  let b = h >>> 0;
  let c = 0x9e3779b9;
  let d = 1;
  const next = () => {
    // sfc32 (Chris Doty-Humphrey's small fast counting generator).
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick<T>(items: readonly T[]): T {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[int(0, items.length - 1)] as T;
    },
    weighted<T>(options: readonly (readonly [number, T])[]): T {
      const total = options.reduce((sum, [weight]) => sum + weight, 0);
      let roll = next() * total;
      for (const [weight, value] of options) {
        roll -= weight;
        if (roll < 0) return value;
      }
      return (options.at(-1) as readonly [number, T])[1];
    },
    bytes(length) {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = int(0, 255);
      return out;
    },
  };
}

/** A tally of outcomes by name, printed as one line: `kind: tried 300, accepted 120, refused 180 (400: 180)`. */
export class Tally {
  readonly counts = new Map<string, number>();
  add(outcome: string, by = 1): void {
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + by);
  }
  get(outcome: string): number {
    return this.counts.get(outcome) ?? 0;
  }
  line(): string {
    return [...this.counts]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([outcome, count]) => `${outcome} ${count}`)
      .join(', ');
  }
}
