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
import type { Canary } from '../db/canary.ts';
import type { Listener } from '../db/listener.ts';
import { StartupError } from '../errors.ts';
import type { Logger } from '../observe/log.ts';
import type { Stats } from '../observe/stats.ts';
import { admit } from './admission.ts';
import type { Routes } from './routes.ts';
import {
  type CloseLabel,
  type CloseMetricLabel,
  Closes,
  type Frame,
  type RefusalLabel,
  Refusals,
  refusalHeaders,
} from './wire.ts';

interface SocketData {
  readonly channel: string;
  /** The listener generation the socket was admitted under; a socket from an older one missed notifications. */
  readonly generation: number;
  closedBy: CloseLabel | undefined;
}

type Socket = ServerWebSocket<SocketData>;

/** Options for {@link createServer}; `listener` is used only to acquire and release channels. */
export interface ServerOptions {
  config: Config;
  catalog: Catalog;
  listener: Pick<Listener, 'acquire' | 'release' | 'has' | 'channelCount' | 'state' | 'generation'>;
  /** Upgrades wait (up to one canary interval) for a round trip through the current LISTEN connection. */
  canary: Pick<Canary, 'verified'>;
  stats: Stats;
  routes: Routes;
  log: Logger;
  /** Share the port with sibling worker processes (`[server] workers`). */
  reusePort: boolean;
  /** Called when a channel loses its last subscriber. */
  onChannelEmpty?: (channel: string) => void;
}

/** Where the server listens: the address it bound, and a URL a local client can use. */
export interface Bound {
  readonly host: string;
  readonly port: number;
  readonly url: URL;
}

/** The HTTP/WebSocket server; nothing is bound until `listen`. */
export interface BridgeServer {
  /** Binds the port. Throws if it is taken. */
  listen(): Bound;
  /** Sends one frame to every subscriber of a channel; returns how many subscribers it went to. */
  publish(channel: string, frame: Frame): number;
  /** Closes every socket with the given cause (e.g. `database_lost` the moment the LISTEN connection goes). */
  closeAll(cause: CloseLabel): void;
  /** Stops accepting, closes every socket with 1001, waits up to `graceMs` for them to go. */
  stop(graceMs?: number): Promise<void>;
}

// The hard cap lets a close frame queue behind the backlog; the sweep closes at the soft bound first.
const HARD_CAP_HEADROOM = 64 * 1024;

/** Creates the server; `listen` binds it. */
export function createServer(options: ServerOptions): BridgeServer {
  const { config, catalog, listener, canary, stats, routes, log } = options;
  const limits = config.server;
  const sockets = new Map<string, Set<Socket>>();
  const sweeps = new Set<string>();
  let stopping = false;
  let server: Server<SocketData> | undefined;

  const close = (ws: Socket, cause: CloseLabel) => {
    if (ws.data.closedBy !== undefined) return;
    ws.data.closedBy = cause;
    ws.close(Closes[cause].code, Closes[cause].text);
  };

  // Runs after the current batch of notifications: closes whoever fell past the bound.
  const sweep = (channel: string) => {
    sweeps.delete(channel);
    for (const ws of sockets.get(channel) ?? []) {
      if (ws.getBufferedAmount() > limits.slowConsumerBytes) close(ws, 'slow_consumer');
    }
  };

  const refuse = (label: RefusalLabel, message: string) => {
    stats.refuse(label);
    return new Response(`${message}\n`, { status: Refusals[label].status, headers: refusalHeaders(label) });
  };

  async function upgrade(request: Request, bun: Server<SocketData>, pathname: string): Promise<Response | undefined> {
    const decision = admit({
      channel: channelFromPath(pathname),
      allowed: catalog.allows,
      stopping,
      databaseDown: listener.state === 'down',
      connections: stats.connections,
      maxConnections: limits.maxConnections,
      listening: listener.has,
      channels: listener.channelCount,
      maxChannels: limits.maxChannels,
    });
    if (!decision.ok) return refuse(decision.reason, decision.message);
    const channel = decision.channel;
    stats.connections += 1;
    // Accept no client that cannot be served: behind a transaction-mode pooler LISTEN succeeds and
    // nothing is ever delivered, so only a round trip through the current connection proves it works.
    // At startup this also waits out the first connect.
    if (!(await canary.verified(config.database.canaryIntervalMs))) {
      stats.connections -= 1;
      if (listener.state !== 'up') return refuse('database_down', 'database connection is down; retry shortly');
      return refuse('not_ready', 'notifications are not arriving from the database yet; retry shortly');
    }
    const generation = listener.generation;
    try {
      await listener.acquire(channel);
    } catch (error) {
      stats.connections -= 1;
      log.warn('LISTEN failed; upgrade refused', { channel, error });
      return refuse('database_down', 'could not LISTEN on the channel; retry shortly');
    }
    // The LISTEN is in place before the socket opens: every NOTIFY committed after open reaches it.
    if (!stopping && bun.upgrade(request, { data: { channel, generation, closedBy: undefined } })) return undefined;
    stats.connections -= 1;
    listener.release(channel);
    return stopping
      ? refuse('shutting_down', 'server is shutting down')
      : refuse('upgrade_failed', 'WebSocket upgrade failed');
  }

  function fetch(request: Request, bun: Server<SocketData>) {
    const pathname = new URL(request.url).pathname;
    if (request.headers.get('upgrade')?.toLowerCase() === 'websocket') return upgrade(request, bun, pathname);
    const route = Object.hasOwn(routes, pathname) ? routes[pathname] : undefined;
    if (route !== undefined) {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return new Response('method not allowed\n', { status: 405 });
      }
      return route(request);
    }
    if (channelFromPath(pathname).ok) {
      stats.refuse('not_websocket');
      return new Response('connect with a WebSocket to receive this channel\n', {
        status: Refusals.not_websocket.status,
        headers: { upgrade: 'websocket' },
      });
    }
    return new Response('not found\n', { status: 404 });
  }

  function listen(): Bound {
    try {
      server = serve();
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'EADDRINUSE') throw error;
      throw new StartupError(
        `port ${limits.port} on ${limits.host} is already in use: stop the other process, or choose another port with PORT or [server] port`,
        { cause: error },
      );
    }
    const host = limits.host;
    const port = server.port ?? limits.port;
    const local = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host;
    return { host, port, url: new URL(`http://${local}:${port}/`) };
  }

  function serve(): Server<SocketData> {
    return Bun.serve<SocketData>({
      hostname: limits.host,
      port: limits.port,
      reusePort: options.reusePort,
      fetch,
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
          stats.channel(channel).subscribers += 1;
          ws.subscribe(channel);
          if (stopping) close(ws, 'shutdown');
          // The connection was lost (and perhaps restored) between the LISTEN and this open.
          else if (listener.generation !== ws.data.generation || listener.state !== 'up') close(ws, 'database_lost');
        },
        message(ws) {
          close(ws, 'receive_only');
        },
        close(ws, code, reason) {
          const { channel } = ws.data;
          const set = sockets.get(channel);
          set?.delete(ws);
          stats.channel(channel).subscribers -= 1;
          if (set?.size === 0) {
            sockets.delete(channel);
            options.onChannelEmpty?.(channel);
          }
          stats.connections -= 1;
          listener.release(channel);
          stats.close(ws.data.closedBy ?? closeLabelOf(code, reason));
        },
      },
    });
  }

  return {
    listen,
    publish(channel, frame) {
      const set = sockets.get(channel);
      if (set === undefined || server === undefined) return 0;
      // -1: someone is backpressured, 0: someone dropped it (and was closed at the hard cap).
      if (server.publish(channel, frame) <= 0 && !sweeps.has(channel)) {
        sweeps.add(channel);
        queueMicrotask(() => sweep(channel));
      }
      return set.size;
    },
    closeAll(cause) {
      for (const set of sockets.values()) for (const ws of set) close(ws, cause);
    },
    async stop(graceMs = 2000) {
      stopping = true;
      for (const set of sockets.values()) for (const ws of set) close(ws, 'shutdown');
      if (server === undefined) return;
      const closed = server.stop(false);
      const timeout = Bun.sleep(graceMs).then(() => 'timeout' as const);
      if ((await Promise.race([closed, timeout])) === 'timeout') await server.stop(true);
    },
  };
}

// uWebSockets sends the client 1009 for an oversized frame but reports it to this handler as 1006 with
// its own reason text, so both are read.
function closeLabelOf(code: number, reason: string): CloseMetricLabel {
  if (code === Closes.too_big.code || reason === 'Received too big message') return 'too_big';
  if (code === Closes.invalid_utf8.code) return 'invalid_utf8';
  return code === 1006 ? 'abnormal' : 'client';
}
