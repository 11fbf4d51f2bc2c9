/**
 * The kit's own subscriber: one client of the bridge, subscribed to every watched channel, handing each message
 * to the recorder. It is a client like any other, so what it records is exactly what subscribers get.
 */
import type { Client, ClientOptions, PgwsError } from '../client/client.ts';
import type { Recorder } from './recorder.ts';

/** The channels being watched. */
export interface Watcher {
  /** Subscribes once per channel; settles when the server answered, rejects when it refused. */
  watch(channel: string): Promise<void>;
  /** What the server refused the whole client with (a token, with `[auth]`), if it did. */
  readonly refused: PgwsError | undefined;
}

/** Opens a client of the bridge; the watcher's is untyped, since it subscribes undeclared channels too. */
export type OpenClient = (options: Partial<ClientOptions>) => Client<Record<string, unknown>>;

/** Opens the watcher's client with `open` (the kit's `client()`, so it is closed with the others). */
export function createWatcher(open: OpenClient, recorder: Pick<Recorder, 'arrived'>): Watcher {
  let refused: PgwsError | undefined;
  const client = open({ reconnect: { minMs: 50, maxMs: 1000 }, onError: (error) => (refused = error) });
  const watches = new Map<string, Promise<void>>();
  return {
    get refused() {
      return refused;
    },
    watch(channel) {
      const known = watches.get(channel);
      if (known !== undefined) return known;
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      // Observed by `next` and by the start; never an unhandled rejection of its own.
      promise.catch(() => {});
      watches.set(channel, promise);
      try {
        client.subscribe(channel, {
          onSubscribed: () => resolve(),
          onMessage: (payload, { seq, epoch }) => recorder.arrived(channel, { payload, seq, epoch }),
          onError: (error) => reject(new Error(`subscribe refused: ${error.code}: ${error.message}`)),
        });
      } catch (error) {
        // The client is closed: the bridge has stopped.
        reject(error);
      }
      return promise;
    },
  };
}
