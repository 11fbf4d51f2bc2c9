/**
 * `POST /channels/C/messages`: a publish over HTTP, decided and sent by the same engine as a multiplexed
 * `publish` frame. The request becomes a one-frame session: its body becomes the frame's `payload`, the
 * subject's (or, without a token, the client address's) rate bucket stands in for the socket's, and the engine's
 * answer, `published` or `error`, becomes the HTTP response. So `publish = true`, the `w` grant, the schema,
 * the size limits and `publish_rate` are checked by the code that checks them for sockets, once.
 *
 * The body: on a channel with a schema it is JSON; on a raw channel it is the text itself, unless it is sent as
 * `application/json`, when it must be a JSON string (exactly a publish frame's `payload`), so a client that
 * always sends JSON needs to know nothing of the channel.
 */
import type { Access } from '../auth/access.ts';
import type { Identity } from '../auth/tokens.ts';
import type { Clock } from '../base/clock.ts';
import type { Stats } from '../base/stats.ts';
import type { Catalog } from '../channels/catalog.ts';
import type { Config } from '../config/load.ts';
import type { Canary } from '../db/canary.ts';
import type { Listener } from '../db/listener.ts';
import { createBuckets } from '../protocol/rate.ts';
import type { Sessions } from '../protocol/session.ts';
import type { Peer } from '../protocol/state.ts';
import { corsHeaders, type RefusalBody, refusal } from './answers.ts';
import { createGate } from './gate.ts';
import { tokenFrom } from './offer.ts';

/** What HTTP publishes need from the rest of the server. */
export interface PublishingOptions {
  config: Config;
  catalog: Pick<Catalog, 'hasSchema'>;
  sessions: Sessions;
  access: Access;
  /** For the origin check (`gate.ts`). */
  canary: Pick<Canary, 'verified'>;
  listener: Pick<Listener, 'state'>;
  stats: Stats;
  /** Time for the rate buckets (the monotonic clock by default; a test passes one it moves). */
  clock?: Clock | undefined;
}

/** HTTP publishes of one server. */
export interface Publishing {
  /**
   * Answers a POST to `/channels/<channel>/messages`; `address` gives the client's, for the rate without a
   * token (asked only then: reading it costs a few µs).
   */
  publish(request: Request, channel: string, address: () => string | undefined): Promise<Response>;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** Reads at most `limit` bytes of the body as text; undefined when it is longer. */
async function readCapped(request: Request, limit: number): Promise<string | undefined> {
  const length = request.headers.get('content-length');
  // A declared length is what Bun reads, no more: the one-call read is then safe.
  if (length !== null) return Number(length) > limit ? undefined : request.text();
  if (request.body === null) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.byteLength;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Creates the HTTP publishes of one server. */
export function createPublishing(options: PublishingOptions): Publishing {
  const { config, catalog, sessions, access, stats } = options;
  const gate = createGate(options);
  const { publishRate, maxMessageBytes } = config.server;
  const buckets = createBuckets(publishRate, options.clock === undefined ? undefined : () => options.clock!.now());
  const queryToken = config.auth?.queryToken ?? false;
  const retryAfter = Math.max(1, Math.ceil(1 / publishRate));

  /** Sends one frame through a one-frame session and resolves with the engine's answer (parsed). */
  function decide(frame: string, identity: Identity | undefined, key: string): Promise<Record<string, unknown>> {
    const { promise, resolve } = Promise.withResolvers<Record<string, unknown>>();
    const peer: Peer = {
      send(text) {
        const answer = JSON.parse(text) as Record<string, unknown>;
        if (answer['type'] === 'published' || answer['type'] === 'error') resolve(answer);
      },
      buffered: () => 0,
      subscribe() {},
      unsubscribe() {},
      close() {},
      // One request holds no slot and cannot be cut off: there is nothing to end.
      identify() {},
    };
    const state = sessions.open(peer, identity, 'http');
    state.bucket = buckets.get(key);
    sessions.message(peer, state, frame);
    return promise.finally(() => sessions.close(state));
  }

  return {
    async publish(request, channel, address) {
      const refuse = (body: RefusalBody) =>
        refusal(request, body, body.code === 'rate_limited' ? retryAfter : undefined);
      if (!gate.originAllowed(request))
        return refuse({ code: 'origin_not_allowed', message: 'this Origin is not allowed' });
      let identity: Identity | undefined;
      if (access.enabled) {
        const token = tokenFrom(request, undefined, queryToken);
        if (token === undefined) {
          stats.authFailure('missing');
          return refuse({ code: 'token_missing', message: 'publishing needs a token granting "w" on the channel' });
        }
        const verified = await access.verify(token, config.database.canaryIntervalMs);
        if (!verified.ok) {
          const code = verified.reason === 'unavailable' ? 'unavailable' : 'token_invalid';
          return refuse({ code, message: verified.message });
        }
        identity = verified.identity;
      }
      const body = await readCapped(request, maxMessageBytes);
      if (body === undefined) {
        const message = `the body is over ${maxMessageBytes} bytes (max_message_bytes)`;
        stats.publish('too_large', 'http');
        return refuse({ code: 'payload_too_large', message, channel });
      }
      const json = catalog.hasSchema(channel) || JSON_TYPE.test(request.headers.get('content-type') ?? '');
      if (json) {
        try {
          // Parsed first so that the text spliced into the frame below is one JSON value and nothing more.
          JSON.parse(body);
        } catch {
          stats.publish('invalid', 'http');
          return refuse({ code: 'bad_request', message: 'the body is not JSON', channel });
        }
      }
      const payload = json ? body : JSON.stringify(body);
      const frame = `{"type":"publish","id":0,"channel":${JSON.stringify(channel)},"payload":${payload}}`;
      const answer = await decide(frame, identity, identity?.subject ?? `address ${address() ?? 'unknown'}`);
      if (answer['type'] === 'error') {
        const { code, message, issues } = answer as unknown as RefusalBody;
        return refuse({ code, message, channel, issues });
      }
      const { id: _id, ...published } = answer;
      return Response.json(published, { headers: { ...corsHeaders(request), 'cache-control': 'no-store' } });
    },
  };
}
