/**
 * The one way the bridge bounds a wait: a promise raced against a timer that is always cleared, so a
 * settled wait leaves nothing scheduled behind it (a stray timer keeps a process alive and skews tests).
 */

/**
 * Settles with `promise`, or with `onTimeout()` if `promise` has not settled within `ms` (which may
 * return a fallback value or throw). `ms` of Infinity waits for as long as it takes.
 */
export async function within<T, U = never>(promise: Promise<T>, ms: number, onTimeout: () => U): Promise<T | U> {
  if (!Number.isFinite(ms)) return promise;
  let timer: Timer | undefined;
  const late = new Promise<U>((resolve, reject) => {
    timer = setTimeout(() => {
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
    clearTimeout(timer);
  }
}
