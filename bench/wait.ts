/**
 * Bounded waits: every wait on something outside the benchmark's control goes through `within`, so none
 * can hang a run and the error names what was awaited.
 */

/** Rejects after `ms` with what was being waited for; the timer never outlives the wait. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How a WebSocket closed: its code, and whatever the client was told ("code 1006: Expected 101 status code: 503"). */
export type Closed = { readonly code: number; readonly text: string };

/** Resolves when `ws` closes. Takes over its `onerror` and `onclose`. */
export function watchClose(ws: WebSocket): Promise<Closed> {
  const closed = Promise.withResolvers<Closed>();
  let why = '';
  // Bun's WebSocket tells why an upgrade failed only in its error event, which close always follows.
  ws.onerror = (event) => {
    why = (event as ErrorEvent).message ?? '';
  };
  ws.onclose = (event) => {
    const text = [`code ${event.code}`, event.reason, why].filter((part) => part !== '').join(': ');
    closed.resolve({ code: event.code, text });
  };
  return closed.promise;
}

/** Waits for one step of opening `ws` (open, `ready`, …); a close or timeout closes it and throws. */
export async function opening(
  ws: WebSocket,
  closed: Promise<Closed>,
  step: Promise<unknown>,
  ms: number,
  what: string,
): Promise<void> {
  const early = closed.then((close) => {
    throw new Error(`closed before ${what} (${close.text})`);
  });
  try {
    await within(Promise.race([step, early]), ms, what);
  } catch (error) {
    ws.close();
    throw error;
  }
}
