/**
 * The one timeout race of the tests: every wait on an event goes through `within`, so a test that
 * hangs fails with what it was waiting for instead of at the suite's ceiling. Imports nothing of the
 * bridge, so clients that bench/ could reuse (test/mux.ts) can wait too.
 */

/** Waits for a promise, failing with `what` after `ms` instead of hanging the suite. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// How often `waitFor` looks again: often enough for a test, rarely enough to leave the server the CPU.
const POLL_MS = 20;

/** Polls `check` until it is true; for states that have no event to wait on (health after a restart). */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  let stopped = false;
  const holds = () =>
    Promise.resolve()
      .then(check)
      .catch(() => false);
  const poll = async () => {
    while (!stopped && !(await holds())) await Bun.sleep(POLL_MS);
  };
  try {
    await within(poll(), ms, what);
  } finally {
    // A timed-out poll stops at its next turn instead of running on behind the failed test.
    stopped = true;
  }
}
