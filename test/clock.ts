/**
 * A clock the test moves by hand, for what the bridge times with an injected {@link Clock} (token expiry):
 * a test passes it to `startBridge({ clock })` and calls `advance` instead of sleeping until a deadline.
 * Time stands still between calls, so what a test checks at a moment stays true while it checks.
 */
import type { Clock } from '../src/base/clock.ts';

/** A {@link Clock} that moves only when told. */
export interface FakeClock extends Clock {
  /** Moves time forward by `ms`, running every timer that falls due, in order of its time (then of setting). */
  advance(ms: number): void;
  /** Moves time forward to `at` (ms since the epoch); never backward. */
  advanceTo(at: number): void;
  /** Timers set and neither fired nor cleared. */
  readonly pending: number;
  /** Now in Unix seconds, as a token's `exp` counts. */
  seconds(): number;
}

/** A fake clock starting at `start` (by default the real time now, so tokens minted now are current). */
export function fakeClock(start = Date.now()): FakeClock {
  let now = start;
  let nextId = 0;
  const timers = new Map<number, { readonly at: number; readonly callback: () => void }>();
  const due = (until: number) => {
    let found: [number, { at: number }] | undefined;
    // Map order is insertion order: among timers due at the same time, the one set first runs first.
    for (const entry of timers)
      if (entry[1].at <= until && (found === undefined || entry[1].at < found[1].at)) found = entry;
    return found?.[0];
  };
  const advanceTo = (at: number) => {
    for (let id = due(at); id !== undefined; id = due(at)) {
      const timer = timers.get(id);
      timers.delete(id);
      if (timer === undefined) continue;
      now = Math.max(now, timer.at);
      timer.callback();
    }
    now = Math.max(now, at);
  };
  return {
    now: () => now,
    seconds: () => Math.floor(now / 1000),
    setTimeout(callback, ms) {
      const id = ++nextId;
      timers.set(id, { at: now + Math.max(0, ms), callback });
      return id;
    },
    clearTimeout(timer) {
      if (typeof timer === 'number') timers.delete(timer);
    },
    advance: (ms) => advanceTo(now + ms),
    advanceTo,
    get pending() {
      return timers.size;
    },
  };
}
