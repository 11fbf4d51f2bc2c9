/**
 * The plain HTTP endpoints: the console, health, readiness, metrics, the channel catalog and the AsyncAPI
 * document, and the
 * answer to any other plain request. Each reads the bridge's state at request time; none touches a socket.
 */
import type { Revocations } from '../auth/revocations.ts';
import { channelFromPath } from '../base/name.ts';
import { Refusals } from '../base/refusals.ts';
import type { Stats } from '../base/stats.ts';
import type { Canary } from '../db/canary.ts';
import type { Listener } from '../db/listener.ts';
import type { Metrics } from '../observe/metrics.ts';
import { preflight, refusal } from './answers.ts';

/** Plain HTTP routes by exact path (GET and HEAD only); the server answers 404/405/426 for the rest. */
export type Routes = Readonly<Record<string, (request: Request) => Response | Promise<Response>>>;

/** What the routes read. */
export interface RouteOptions {
  listener: Pick<Listener, 'state'>;
  canary: Pick<Canary, 'status'>;
  /** With `[auth]`, not ready until the revocations are read: until then no token is accepted. */
  revocations: Pick<Revocations, 'current'>;
  /** `[database] ingest = "replication"`: not ready while the replication connection is not up. */
  ingest: { readonly state: string; readonly ready: boolean };
  metrics: Metrics;
  /** The /channels document, serialised once at startup. */
  channelsDocument: string;
  /** The AsyncAPI document, serialised, with `host` (the request's `host:port`) as its server. */
  asyncapi(host: string): string;
  /** The console page served at `/`. */
  consoleHtml: string | undefined;
  /** The client bundled as a browser ES module, served at `/client.js`. */
  clientJs: string | undefined;
}

const json = (body: unknown, status = 200) => Response.json(body, { status, headers: { 'cache-control': 'no-store' } });

/** Builds the route table. */
export function createRoutes(options: RouteOptions): Routes {
  const { listener, canary, revocations, ingest, metrics } = options;
  const consoleHtml = options.consoleHtml ?? 'console.html not found\n';
  return {
    '/': () => new Response(consoleHtml, { headers: { 'content-type': 'text/html; charset=utf-8' } }),
    '/client.js': () =>
      options.clientJs === undefined
        ? new Response('client.js is not built in this server\n', { status: 404 })
        : new Response(options.clientJs, {
            headers: { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' },
          }),
    // Browsers ask for it on every page load; without this route it would be taken for a channel (426).
    '/favicon.ico': () => new Response(null, { status: 404 }),
    // The LISTEN connection only: is the process connected to its database.
    '/healthz': () => {
      const up = listener.state === 'up';
      return json({ status: up ? 'ok' : 'unavailable', database: listener.state, pid: process.pid }, up ? 200 : 503);
    },
    // The connection and a recent NOTIFY round trip through it: will a subscriber get its notifications.
    // And, with [auth], will a token be accepted: the revocations are current. And, with ingest by
    // replication, will a durable channel's new message arrive: the replication connection is up.
    '/readyz': () => {
      const status = canary.status();
      const ready = listener.state === 'up' && status.ready && revocations.current && ingest.ready;
      const body = {
        ...status,
        ready,
        database: listener.state,
        revocationsCurrent: revocations.current,
        ingest: ingest.state,
      };
      return json(body, ready ? 200 : 503);
    },
    // With workers: the whole server's figures, or each process's labelled `worker` with `?by=worker`.
    '/metrics': async (request) => {
      const byWorker = new URL(request.url).searchParams.get('by') === 'worker';
      return new Response(await metrics.render(byWorker), { headers: { 'content-type': metrics.contentType } });
    },
    '/channels': () =>
      new Response(options.channelsDocument, {
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      }),
    // The server's host is the one the client reached, so tools connect where the document was fetched from.
    '/asyncapi.json': (request) =>
      new Response(options.asyncapi(new URL(request.url).host), {
        headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      }),
  };
}

/** The endpoints that take more than a route: `GET /events` and `POST /channels/C/messages`. */
export interface Endpoints {
  events(request: Request): Promise<Response>;
  /** `channel` is the path segment, percent-decoded (and not yet checked as a name). */
  publish(request: Request, channel: string): Promise<Response>;
}

const PUBLISH_PATH = /^\/channels\/([^/]+)\/messages$/;

const notAllowed = (allow: string) => new Response('method not allowed\n', { status: 405, headers: { allow } });

/**
 * The answer to a plain HTTP request (not an upgrade): `/events` (GET, and a CORS preflight) and
 * `/channels/C/messages` (POST, and a preflight) to their endpoints; a route (GET and HEAD only, else 405); 426
 * on a channel's path (counted as a `not_websocket` refusal); 404 for anything else.
 */
export function answer(
  routes: Routes,
  request: Request,
  pathname: string,
  stats: Pick<Stats, 'refuse'>,
  endpoints: Endpoints,
): Response | Promise<Response> {
  const publishPath = PUBLISH_PATH.exec(pathname);
  if (pathname === '/events' || publishPath !== null) {
    if (request.method === 'OPTIONS') return preflight(request);
    if (publishPath === null) return request.method === 'GET' ? endpoints.events(request) : notAllowed('GET, OPTIONS');
    if (request.method !== 'POST') return notAllowed('POST, OPTIONS');
    let channel: string;
    try {
      channel = decodeURIComponent(publishPath[1]!);
    } catch {
      return refusal(request, {
        code: 'bad_channel',
        message: 'the channel in the path is not valid percent-encoding',
      });
    }
    return endpoints.publish(request, channel);
  }
  const route = Object.hasOwn(routes, pathname) ? routes[pathname] : undefined;
  if (route !== undefined) {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return new Response('method not allowed\n', { status: 405 });
    }
    return route(request);
  }
  const channel = channelFromPath(pathname);
  if (channel.ok) {
    stats.refuse('not_websocket', 'ws');
    // `curl -N host/orders` is what a newcomer tries first: the answer names the URL that streams it.
    const events = `/events?channel=${encodeURIComponent(channel.name)}`;
    return new Response(`connect with a WebSocket to receive this channel, or stream it over HTTP: GET ${events}\n`, {
      status: Refusals.not_websocket.status,
      headers: { upgrade: 'websocket' },
    });
  }
  return new Response('not found\n', { status: 404 });
}
