/**
 * The one file that touches `Bun.serve` and `ServerWebSocket`: upgrades, fan-out through Bun's topics,
 * slow-consumer enforcement, and the HTTP routes it is handed.
 *
 * Fan-out is `server.publish(channel, frame)`: uWebSockets writes the same frame to every subscriber
 * in native code, so a notification is encoded once whatever the number of clients.
 */
import type { Server, ServerWebSocket } from 'bun';
import type { Catalog } from '../channels/catalog.ts';
import { channelFromPath } from '../channels/name.ts';
import type { Config } from '../config/load.ts';
import type { Listener } from '../db/listener.ts';
import type { Logger } from '../observe/log.ts';
import type { CloseReason, Stats } from '../observe/stats.ts';
import { admit } from './admission.ts';
import { Close, type CloseCode, CloseReason as CloseText, type Frame, Refusal } from './wire.ts';

interface SocketData {
  readonly channel: string;
  closedBy: CloseReason | undefined;
}

type Socket = ServerWebSocket<SocketData>;

/** Plain HTTP routes by exact path (GET only); the server answers 404/405 for the rest. */
export type Routes = Readonly<Record<string, (request: Request) => Response | Promise<Response>>>;

/** Options for {@link createServer}; `listener` is used only to acquire and release channels. */
export interface ServerOptions {
  config: Config;
  catalog: Catalog;
  listener: Pick<Listener, 'acquire' | 'release' | 'has' | 'channelCount' | 'state'>;
  stats: Stats;
  routes: Routes;
  log: Logger;
  /** Called when a channel loses its last subscriber. */
  onChannelEmpty?: (channel: string) => void;
}

/** The running HTTP/WebSocket server. */
export interface BridgeServer {
  readonly url: URL;
  /** Sends one frame to every subscriber of a channel; returns how many subscribers it went to. */
  publish(channel: string, frame: Frame): number;
  /** Closes every socket on these channels with the given code (e.g. 1012 after a reconnect). */
  closeChannels(channels: readonly string[], code: CloseCode, reason: CloseReason): void;
  readonly connections: number;
  subscribers(): ReadonlyMap<string, number>;
  /** Stops accepting, closes every socket with 1001, waits up to `graceMs` for them to go. */
  stop(graceMs?: number): Promise<void>;
}

// The hard cap lets a close frame queue behind the backlog; the sweep closes at the soft bound first.
const HARD_CAP_HEADROOM = 64 * 1024;

/** Starts listening at once; `reusePort` lets several worker processes share the port. */
export function createServer(options: ServerOptions, reusePort = false): BridgeServer {
  const { config, catalog, listener, stats, routes, log } = options;
  const limits = config.server;
  const sockets = new Map<string, Set<Socket>>();
  const sweeps = new Set<string>();
  let admitted = 0;
  let stopping = false;

  const close = (ws: Socket, code: CloseCode, reason: CloseReason) => {
    if (ws.data.closedBy !== undefined) return;
    ws.data.closedBy = reason;
    ws.close(code, CloseText[code]);
  };

  // Runs after the current batch of notifications: closes whoever fell past the bound.
  const sweep = (channel: string) => {
    sweeps.delete(channel);
    for (const ws of sockets.get(channel) ?? []) {
      if (ws.getBufferedAmount() > limits.slowConsumerBytes) close(ws, Close.slowConsumer, 'slow_consumer');
    }
  };

  async function upgrade(
    request: Request,
    server: Server<SocketData>,
    pathname: string,
  ): Promise<Response | undefined> {
    const decision = admit({
      channel: channelFromPath(pathname),
      allowed: catalog.allows,
      stopping,
      databaseUp: listener.state === 'up',
      connections: admitted,
      maxConnections: limits.maxConnections,
      listening: listener.has,
      channels: listener.channelCount,
      maxChannels: limits.maxChannels,
    });
    if (!decision.ok) {
      stats.refuse(decision.reason);
      return new Response(`${decision.message}\n`, { status: decision.status, headers: retryAfter(decision.status) });
    }
    const channel = decision.channel;
    admitted += 1;
    try {
      await listener.acquire(channel);
    } catch (error) {
      admitted -= 1;
      stats.refuse('databaseDown');
      log.warn('LISTEN failed; upgrade refused', { channel, error });
      return new Response('could not LISTEN on the channel; retry shortly\n', {
        status: Refusal.databaseDown,
        headers: retryAfter(Refusal.databaseDown),
      });
    }
    // The LISTEN is in place before the socket opens: every NOTIFY committed after open reaches it.
    if (!stopping && server.upgrade(request, { data: { channel, closedBy: undefined } })) return undefined;
    admitted -= 1;
    listener.release(channel);
    return new Response(stopping ? 'server is shutting down\n' : 'WebSocket upgrade failed\n', {
      status: stopping ? Refusal.shuttingDown : Refusal.upgradeFailed,
    });
  }

  const server: Server<SocketData> = Bun.serve<SocketData>({
    hostname: limits.host,
    port: limits.port,
    reusePort,
    async fetch(request, server) {
      const pathname = new URL(request.url).pathname;
      if (request.headers.get('upgrade')?.toLowerCase() === 'websocket') return upgrade(request, server, pathname);
      const route = Object.hasOwn(routes, pathname) ? routes[pathname] : undefined;
      if (route !== undefined) {
        if (request.method !== 'GET' && request.method !== 'HEAD')
          return new Response('method not allowed\n', { status: 405 });
        return route(request);
      }
      const named = channelFromPath(pathname);
      if (named.ok)
        return new Response('connect with a WebSocket to receive this channel\n', {
          status: Refusal.notWebSocket,
          headers: { upgrade: 'websocket' },
        });
      return new Response('not found\n', { status: 404 });
    },
    error(error) {
      log.error('request handler failed', { error });
      return new Response('internal server error\n', { status: 500 });
    },
    websocket: {
      maxPayloadLength: limits.maxMessageBytes,
      backpressureLimit: limits.slowConsumerBytes * 2 + HARD_CAP_HEADROOM,
      closeOnBackpressureLimit: true,
      idleTimeout: limits.idleTimeout,
      sendPings: true,
      open(ws) {
        const { channel } = ws.data;
        let set = sockets.get(channel);
        if (set === undefined) {
          set = new Set();
          sockets.set(channel, set);
        }
        set.add(ws);
        ws.subscribe(channel);
        if (stopping) close(ws, Close.goingAway, 'shutdown');
      },
      message(ws) {
        close(ws, Close.receiveOnly, 'receive_only');
      },
      close(ws, code, reason) {
        const { channel } = ws.data;
        const set = sockets.get(channel);
        set?.delete(ws);
        if (set?.size === 0) {
          sockets.delete(channel);
          options.onChannelEmpty?.(channel);
        }
        admitted -= 1;
        listener.release(channel);
        stats.close(ws.data.closedBy ?? closeReasonOf(code, reason));
      },
    },
  });

  return {
    url: new URL(`http://${limits.host === '0.0.0.0' ? '127.0.0.1' : limits.host}:${server.port}/`),
    publish(channel, frame) {
      const set = sockets.get(channel);
      if (set === undefined) return 0;
      // -1: someone is backpressured, 0: someone dropped it (and was closed at the hard cap).
      if (server.publish(channel, frame) <= 0 && !sweeps.has(channel)) {
        sweeps.add(channel);
        queueMicrotask(() => sweep(channel));
      }
      return set.size;
    },
    closeChannels(channels, code, reason) {
      for (const channel of channels) for (const ws of sockets.get(channel) ?? []) close(ws, code, reason);
    },
    get connections() {
      return admitted;
    },
    subscribers: () => new Map([...sockets].map(([channel, set]) => [channel, set.size])),
    async stop(graceMs = 2000) {
      stopping = true;
      for (const set of sockets.values()) for (const ws of set) close(ws, Close.goingAway, 'shutdown');
      const closed = server.stop(false);
      const timeout = Bun.sleep(graceMs).then(() => 'timeout' as const);
      if ((await Promise.race([closed, timeout])) === 'timeout') await server.stop(true);
    },
  };
}

// uWebSockets sends the client 1009 for an oversized frame but reports it to this handler as 1006 with
// its own reason text, so both are read.
function closeReasonOf(code: number, reason: string): CloseReason {
  if (code === Close.tooBig || reason === 'Received too big message') return 'too_big';
  return code === 1006 ? 'abnormal' : 'client';
}

function retryAfter(status: number): Record<string, string> {
  return status === 503 ? { 'retry-after': '1' } : {};
}
