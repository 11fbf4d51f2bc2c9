/**
 * The one file that touches `Bun.serve` and `ServerWebSocket`: upgrades in both modes, fan-out through
 * Bun's topics, slow-consumer enforcement, cut-offs of a subject's sockets, and the HTTP routes it is handed,
 * `GET /events` streams and `POST /channels/C/messages` among them.
 *
 * Fan-out is `server.publish(topic, frame)`: uWebSockets writes the same frame to every subscriber in native code.
 * Plain sockets subscribe to the topic named after their channel; multiplexed ones (and streams, which `topics.ts`
 * hands each frame) to the hub's topics, and everything they send goes through `protocol/session.ts`.
 */
import type { Server, ServerWebSocket } from 'bun';
import type { Identity } from '../auth/tokens.ts';
import type { Clock } from '../base/clock.ts';
import { StartupError } from '../base/errors.ts';
import { within } from '../base/timeout.ts';
import { type CloseLabel, Closes, closeLabelOf, closeText } from '../base/wire.ts';
import type { Sessions } from '../protocol/session.ts';
import type { Peer } from '../protocol/state.ts';
import { createExpiries } from './expiry.ts';
import { createPublishing } from './publishing.ts';
import { answer, type Routes } from './routes.ts';
import type { SocketData } from './sockets.ts';
import { createStreams } from './streams.ts';
import type { Holder, Subjects } from './subjects.ts';
import { createTopics } from './topics.ts';
import { createUpgrades, type UpgradeOptions } from './upgrade.ts';

type Socket = ServerWebSocket<SocketData>;

/** Options for {@link createServer}: what upgrades read, plus the sessions, the routes and the port sharing. */
export interface ServerOptions extends Omit<UpgradeOptions, 'stopping'> {
  sessions: Sessions;
  routes: Routes;
  /** Who speaks for which subject: every socket with a token is held there while it is open. */
  subjects: Subjects<Holder>;
  /** Share the port with sibling worker processes (`[server] workers`). */
  reusePort: boolean;
  /** Token expiry's time (the real clock by default). */
  clock?: Clock | undefined;
}

/** Where the server listens: the address it bound, and a URL a local client can use. */
export interface Bound {
  readonly host: string;
  readonly port: number;
  readonly url: URL;
}

/** The HTTP/WebSocket server; nothing is bound until `listen`. */
export interface BridgeServer {
  /** Binds the port. Throws a StartupError if it is taken. */
  listen(): Bound;
  /** Sends one frame to every socket on a topic; returns how many sockets joined it. */
  publish(topic: string, frame: string): number;
  /** Closes every plain socket (or those on a channel `which` picks) with the cause, e.g. `database_lost`. */
  closePlain(cause: CloseLabel, which?: (channel: string) => boolean): void;
  /** Plain sockets open now. */
  readonly plainSockets: number;
  /** Stops accepting, closes every socket with 1001, waits up to `graceMs` for them to go. */
  stop(graceMs?: number): Promise<void>;
}

// The hard cap lets a close frame queue behind the backlog; the sweep closes at the soft bound first.
const HARD_CAP_HEADROOM = 64 * 1024;

/** Creates the server; `listen` binds it. */
export function createServer(options: ServerOptions): BridgeServer {
  const { config, listener, sessions, subjects, slots, stats, routes, log } = options;
  const limits = config.server;
  const plain = new Set<Socket>();
  const multiplexed = new Set<Socket>();
  let stopping = false;
  let server: Server<SocketData> | undefined;

  const close = (ws: Socket, cause: CloseLabel, text: string = Closes[cause].text) => {
    if (ws.data.closedBy !== undefined) return;
    ws.data.closedBy = cause;
    ws.close(Closes[cause].code, closeText(text));
  };
  const expiries = createExpiries<Socket>(
    (ws) => ws.data,
    (ws) => close(ws, 'token_expired'),
    options.clock,
  );
  const expireAt = expiries.expireAt;
  const topics = createTopics<Socket>({
    slow: (ws) => ws.getBufferedAmount() > limits.slowConsumerBytes,
    cut: (ws) => close(ws, 'slow_consumer'),
  });
  // A class, not an object of closures: its methods are shared, so each multiplexed socket costs one field.
  // Also what a plain socket with a token is held by in `subjects`.
  class SocketPeer implements Peer, Holder {
    constructor(private readonly ws: Socket) {}
    send(text: string) {
      return this.ws.send(text);
    }
    buffered() {
      return this.ws.getBufferedAmount();
    }
    subscribe(topic: string) {
      topics.join(this.ws, topic);
    }
    unsubscribe(topic: string) {
      this.ws.unsubscribe(topic);
      topics.leave(this.ws, topic);
    }
    close(cause: CloseLabel, text?: string) {
      close(this.ws, cause, text);
    }
    identify(identity: Identity | undefined) {
      expireAt(this.ws, identity?.expires);
      subjects.hold(this, identity);
    }
  }

  const upgrades = createUpgrades({ ...options, stopping: () => stopping });
  const streams = createStreams({ ...options, topics, stopping: () => stopping });
  const publishing = createPublishing(options);

  async function upgrade(request: Request, bun: Server<SocketData>, pathname: string) {
    const decided = await upgrades.decide(request, pathname);
    if (decided instanceof Response) return decided;
    const { data, headers } = decided;
    if (!stopping && bun.upgrade(request, headers === undefined ? { data } : { data, headers })) return undefined;
    decided.undo();
    return stopping
      ? upgrades.refuse('shutting_down', 'server is shutting down')
      : upgrades.refuse('upgrade_failed', 'upgrade failed');
  }

  function fetch(request: Request, bun: Server<SocketData>) {
    const pathname = new URL(request.url).pathname;
    if (request.headers.get('upgrade')?.toLowerCase() === 'websocket') return upgrade(request, bun, pathname);
    return answer(routes, request, pathname, stats, {
      events(request) {
        // A stream may be quiet for a while between heartbeats: Bun's idle timeout is for requests, not streams.
        bun.timeout(request, 0);
        return streams.open(request);
      },
      publish: (request, channel) => publishing.publish(request, channel, () => bun.requestIP(request)?.address),
    });
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
          const { data } = ws;
          if (data.mode === 'multiplexed') {
            multiplexed.add(ws);
            if (data.offered !== undefined && 'refused' in data.offered) return close(ws, data.offered.refused);
            const peer = new SocketPeer(ws);
            data.peer = peer;
            data.session = sessions.open(peer, data.offered?.identity);
            if (stopping) close(ws, 'shutdown');
            return;
          }
          plain.add(ws);
          stats.channel(data.channel).subscribers += 1;
          topics.join(ws, data.channel);
          if (data.identity !== undefined) {
            const holder = new SocketPeer(ws);
            data.holder = holder;
            holder.identify(data.identity);
          }
          if (stopping) close(ws, 'shutdown');
          // The connection was lost (and perhaps restored) between the LISTEN and this open.
          else if (listener.generation !== data.generation || listener.state !== 'up') close(ws, 'database_lost');
        },
        message(ws, message) {
          const { data } = ws;
          if (data.mode === 'plain') return close(ws, 'receive_only');
          if (typeof message !== 'string') return close(ws, 'binary_frame');
          if (data.peer !== undefined && data.session !== undefined) sessions.message(data.peer, data.session, message);
        },
        drain(ws) {
          const { data } = ws;
          if (data.mode === 'multiplexed' && data.peer !== undefined && data.session !== undefined) {
            sessions.drain(data.peer, data.session);
          }
        },
        close(ws, code, reason) {
          const { data } = ws;
          expiries.clear(ws);
          for (const topic of [...data.topics]) topics.leave(ws, topic);
          stats.disconnect('ws');
          stats.close(data.closedBy ?? closeLabelOf(code, reason), 'ws');
          if (data.mode === 'multiplexed') {
            multiplexed.delete(ws);
            if (data.peer !== undefined) subjects.release(data.peer);
            if (data.session !== undefined) sessions.close(data.session);
            return;
          }
          plain.delete(ws);
          stats.channel(data.channel).subscribers -= 1;
          listener.release(data.channel);
          if (data.holder !== undefined) subjects.release(data.holder);
          if (data.identity !== undefined) slots.give(data.identity.subject);
        },
      },
    });
  }

  return {
    listen() {
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
    },
    publish: (topic, frame) => (server === undefined ? 0 : topics.publish(topic, frame, server)),
    closePlain(cause, which = () => true) {
      for (const ws of plain) if (ws.data.mode === 'plain' && which(ws.data.channel)) close(ws, cause);
    },
    get plainSockets() {
      return plain.size;
    },
    async stop(graceMs = 2000) {
      stopping = true;
      for (const ws of plain) close(ws, 'shutdown');
      for (const ws of multiplexed) close(ws, 'shutdown');
      streams.stop();
      if (server === undefined) return;
      const closed = server.stop(false).then(() => true);
      if (!(await within(closed, graceMs, () => false))) await server.stop(true);
    },
  };
}
