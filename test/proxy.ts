/**
 * A TCP proxy on 127.0.0.1 for tests: forwards bytes both ways, can cut every connection at once, and can
 * rewrite what the server sends. `dropNotifications` plays a transaction-mode pooler (PgBouncer
 * `pool_mode = transaction`): LISTEN succeeds, but NotificationResponse messages never reach the client
 * (given a function, only those on the channels it picks at the time).
 * `refuseUpgrades` plays a corporate HTTP proxy that lets plain HTTP through and answers every WebSocket
 * upgrade with 403.
 */
import type { Socket, TCPSocketListener } from 'bun';

/** A running proxy; `url(databaseUrl)` rewrites a URL's host and port to go through it. */
export interface TcpProxy extends AsyncDisposable {
  readonly port: number;
  /** Connections open now. */
  readonly open: number;
  /** Closes every proxied connection (both sides), as a network cut would; new ones are still accepted. */
  cut(): void;
  /** Rewrites a URL so it points at the proxy. */
  url(target: string): string;
  /** Sends new connections to another port (a restarted server); open ones keep theirs. */
  retarget(port: number): void;
}

/** Rewrites server-to-client bytes; keeps state per connection. */
type Rewriter = (chunk: Uint8Array) => Uint8Array;

interface Pair {
  client: Socket<Pair>;
  upstream: Socket<Pair> | undefined;
  toUpstream: Uint8Array[];
  rewrite: Rewriter | undefined;
}

/** Starts a proxy to `target` (host and port). */
export function startTcpProxy(options: {
  target: { host: string; port: number };
  dropNotifications?: boolean | ((channel: string) => boolean);
  refuseUpgrades?: boolean;
}): TcpProxy {
  const { dropNotifications } = options;
  const drop = typeof dropNotifications === 'function' ? dropNotifications : () => true;
  const pairs = new Set<Pair>();
  const target = { ...options.target };
  const listener: TCPSocketListener<Pair> = Bun.listen<Pair>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(client) {
        const pair: Pair = {
          client,
          upstream: undefined,
          toUpstream: [],
          rewrite: dropNotifications ? dropNotificationResponses(drop) : undefined,
        };
        client.data = pair;
        pairs.add(pair);
        void Bun.connect<Pair>({
          hostname: target.host,
          port: target.port,
          data: pair,
          socket: {
            open(upstream) {
              pair.upstream = upstream;
              for (const chunk of pair.toUpstream) upstream.write(chunk);
              pair.toUpstream = [];
            },
            data(_upstream, chunk) {
              pair.client.write(pair.rewrite ? pair.rewrite(chunk) : chunk);
            },
            close() {
              pair.client.end();
              pairs.delete(pair);
            },
            error() {
              pair.client.end();
            },
          },
        }).catch(() => client.end());
      },
      data(client, chunk) {
        const pair = client.data;
        // A request head asking to upgrade (headers are case-insensitive, RFC 9110 §5.1): refused, never forwarded.
        if (options.refuseUpgrades && /\r\nupgrade:[ \t]*websocket/i.test(Buffer.from(chunk).toString('latin1'))) {
          client.write(
            'HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 31\r\nconnection: close\r\n\r\nWebSockets are not allowed here',
          );
          client.end();
          pair.upstream?.end();
          return;
        }
        if (pair.upstream === undefined) pair.toUpstream.push(new Uint8Array(chunk));
        else pair.upstream.write(chunk);
      },
      close(client) {
        client.data.upstream?.end();
        pairs.delete(client.data);
      },
      error() {},
    },
  });
  const cut = () => {
    for (const pair of pairs) {
      pair.client.terminate();
      pair.upstream?.terminate();
    }
    pairs.clear();
  };
  return {
    port: listener.port,
    get open() {
      return pairs.size;
    },
    cut,
    retarget(port) {
      target.port = port;
    },
    url(to) {
      const url = new URL(to);
      url.hostname = '127.0.0.1';
      url.port = String(listener.port);
      return url.href;
    },
    async [Symbol.asyncDispose]() {
      cut();
      listener.stop(true);
    },
  };
}

/**
 * PostgreSQL's backend messages are a type byte and a 4-byte big-endian length that counts itself (protocol
 * §55.7); NotificationResponse is type 'A' (then the sender's pid, the channel and the payload, C strings).
 * Messages may span chunks, so whole ones are reassembled first.
 */
function dropNotificationResponses(drop: (channel: string) => boolean): Rewriter {
  let pending = new Uint8Array(0);
  return (chunk) => {
    const data = new Uint8Array(pending.length + chunk.length);
    data.set(pending);
    data.set(chunk, pending.length);
    const kept: Uint8Array[] = [];
    let at = 0;
    while (at + 5 <= data.length) {
      const length = new DataView(data.buffer, data.byteOffset + at + 1, 4).getUint32(0);
      if (at + 1 + length > data.length) break;
      const notification = data[at] === 0x41;
      if (!notification || !drop(Buffer.from(data.subarray(at + 9, data.indexOf(0, at + 9))).toString('utf8')))
        kept.push(data.subarray(at, at + 1 + length));
      at += 1 + length;
    }
    pending = data.slice(at);
    const out = new Uint8Array(kept.reduce((sum, part) => sum + part.length, 0));
    let offset = 0;
    for (const part of kept) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  };
}
