/**
 * Time as the bridge reads it where a test would otherwise have to wait for it: token expiry (jose's
 * `exp`/`nbf` checks and the per-socket expiry timers). Passed in from `createBridge`'s options, so a test
 * moves a clock of its own forward instead of sleeping; everything defaults to {@link systemClock}.
 */

/** A pending timer of a {@link Clock}: opaque, only good for that clock's `clearTimeout`. */
export type ClockTimer = unknown;

/** Now and timers, in milliseconds, as `Date.now`, `setTimeout` and `clearTimeout` give them. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `callback` once, `ms` from now (never sooner than the next turn of the event loop). */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Cancels a pending timer; a fired, cancelled or undefined one is ignored. */
  clearTimeout(timer: ClockTimer): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer as Timer | undefined),
};
