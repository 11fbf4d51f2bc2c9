/**
 * Token expiry for open sockets: one timer per socket, reset on refresh, cleared on close (never a scan of
 * all sockets). Expiries due together (10,000 tokens minted in one second) are closed a batch per
 * macrotask, so pings, frames and upgrades interleave with them instead of waiting out one long loop.
 * Time comes from a {@link Clock} (the real one unless a test passes its own).
 */
import { CLOCK_TOLERANCE_SECONDS } from '../auth/tokens.ts';
import { type Clock, type ClockTimer, systemClock } from '../base/clock.ts';

/** What a socket carries for its expiry (in its data). */
export interface ExpiryState {
  /** The pending timer. */
  expiry: ClockTimer;
  /** When the socket expires (ms since the epoch), checked again when the close is made. */
  deadline: number | undefined;
}

/** The expiry clock of one server. */
export interface Expiries<Socket> {
  /** Closes `socket` at `expires` (Unix seconds) plus the tolerance; undefined cancels. */
  expireAt(socket: Socket, expires: number | undefined): void;
  /** Forgets a closed socket's timer. */
  clear(socket: Socket): void;
}

// setTimeout takes at most a signed 32-bit delay; a later expiry is re-armed in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;
const BATCH = 256;

/** Creates the expiries; `close` ends one expired socket. */
export function createExpiries<Socket>(
  state: (socket: Socket) => ExpiryState,
  close: (socket: Socket) => void,
  clock: Clock = systemClock,
): Expiries<Socket> {
  const expiring: Socket[] = [];
  let at = 0;
  const closeExpired = () => {
    const end = Math.min(expiring.length, at + BATCH);
    for (; at < end; at++) {
      const socket = expiring[at]!;
      const { deadline } = state(socket);
      // A refresh that landed while this socket waited in the queue moved its deadline: it stays.
      if (deadline !== undefined && clock.now() >= deadline) close(socket);
    }
    if (at < expiring.length) return void setImmediate(closeExpired);
    expiring.length = 0;
    at = 0;
  };
  const expire = (socket: Socket) => {
    if (expiring.push(socket) === 1) setImmediate(closeExpired);
  };
  const clear = (socket: Socket) => {
    const data = state(socket);
    clock.clearTimeout(data.expiry);
    data.expiry = undefined;
    data.deadline = undefined;
  };
  return {
    clear,
    expireAt(socket, expires) {
      clear(socket);
      if (expires === undefined) return;
      const data = state(socket);
      const deadline = (expires + CLOCK_TOLERANCE_SECONDS) * 1000;
      data.deadline = deadline;
      const arm = () => {
        const wait = deadline - clock.now();
        data.expiry = clock.setTimeout(wait > MAX_TIMER_MS ? arm : () => expire(socket), Math.min(wait, MAX_TIMER_MS));
      };
      arm();
    },
  };
}
