/**
 * The one way the bridge bounds a wait: a promise raced against a timer that is always cleared, so a
 * settled wait leaves nothing scheduled behind it (a stray timer keeps a process alive and skews tests).
 */
import { type Clock, type ClockTimer, systemClock } from './clock.ts';

/**
 * Settles with `promise`, or with `onTimeout()` if `promise` has not settled within `ms` (which may
 * return a fallback value or throw). `ms` of Infinity waits for as long as it takes. `clock` is the real
 * one unless a test hands in its own.
 */
export async function within<T, U = never>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => U,
  clock: Clock = systemClock,
): Promise<T | U> {
  if (!Number.isFinite(ms)) return promise;
  let timer: ClockTimer;
  const late = new Promise<U>((resolve, reject) => {
    timer = clock.setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (error) {
        reject(error);
      }
    }, ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clock.clearTimeout(timer);
  }
}
