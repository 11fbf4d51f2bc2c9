/**
 * `GET /events`: Server-Sent Events (or NDJSON, by `Accept`) on the same engine as a multiplexed socket. The
 * query becomes one `subscribe` frame per channel (`filter.C`, `last.C`, and `since` from the cursor in
 * `Last-Event-ID` or `?since=`), sent through `Sessions.message` like any client's frames, so every rule of a
 * subscribe (names, declared channels, grants, filters, resume and replay, limits) is the engine's, once. The
 * response waits for every answer: a refusal is plain HTTP (`answers.ts`), and a stream that starts has all of
 * its `subscribed` events at its head.
 *
 * Also here: the streams of one server, their heartbeats (a comment at least every 15 s, from one timer for all
 * of them), their token expiry, and their end at shutdown.
 */
import type { Access } from '../auth/access.ts';
import type { SubjectSlots } from '../auth/slots.ts';
import type { Identity } from '../auth/tokens.ts';
import { type Clock, type ClockTimer, systemClock } from '../base/clock.ts';
import { type CursorPosition, decodeCursor } from '../base/cursor.ts';
import type { Stats } from '../base/stats.ts';
import type { CloseMetricLabel } from '../base/wire.ts';
import type { Config } from '../config/load.ts';
import type { Canary } from '../db/canary.ts';
import type { Listener } from '../db/listener.ts';
import type { Sessions } from '../protocol/session.ts';
import { admitMultiplexed } from './admission.ts';
import { corsHeaders, type RefusalBody, refusal } from './answers.ts';
import { createExpiries } from './expiry.ts';
import { CONTENT_TYPES, type StreamFormat, StreamWriter } from './framing.ts';
import { createGate } from './gate.ts';
import { tokenFrom } from './offer.ts';
import { Stream } from './stream.ts';
import type { Holder, Subjects } from './subjects.ts';
import type { Topics } from './topics.ts';

/** What streams need from the rest of the server. */
export interface StreamsOptions {
  config: Config;
  sessions: Sessions;
  access: Access;
  /** Streams wait (up to one canary interval) for a round trip through the current LISTEN connection. */
  canary: Pick<Canary, 'verified'>;
  /** A stream with a token holds a slot of its subject, and a cut-off of the subject ends it. */
  slots: SubjectSlots;
  subjects: Subjects<Holder>;
  stats: Stats;
  listener: Pick<Listener, 'state'>;
  topics: Pick<Topics<never>, 'joinStream' | 'leaveStream'>;
  stopping: () => boolean;
  maxSockets: number;
  /** Heartbeats and token expiry (the real clock by default). */
  clock?: Clock | undefined;
}

/** The streams of one server. */
export interface Streams {
  /** Answers a `GET /events`: a refusal, or a response that streams. */
  open(request: Request): Promise<Response>;
  /** Ends every stream (shutdown). */
  stop(): void;
  readonly size: number;
}

// A tick writes a heartbeat to each stream that wrote nothing since the one before: never 15 s of silence.
const HEARTBEAT_TICK_MS = 7000;

/** Which format the client asked for: NDJSON when `Accept` names it, Server-Sent Events otherwise (curl's default). */
export function formatOf(request: Request): StreamFormat {
  return (request.headers.get('accept') ?? '').includes('application/x-ndjson') ? 'ndjson' : 'sse';
}

/** Creates the streams of one server. */
export function createStreams(options: StreamsOptions): Streams {
  const { config, sessions, access, slots, subjects, stats, listener, topics, clock = systemClock } = options;
  const gate = createGate(options);
  // A token waits as long as an upgrade waits for the canary: for the revocations to be current.
  const tokenWaitMs = config.database.canaryIntervalMs;
  const queryToken = config.auth?.queryToken ?? false;
  const open = new Set<Stream>();
  const dirty: Stream[] = [];
  let heartbeat: ClockTimer;

  const flushAll = () => {
    for (const stream of dirty.splice(0)) stream.flush();
  };
  const tick = () => {
    heartbeat = open.size === 0 ? undefined : clock.setTimeout(tick, HEARTBEAT_TICK_MS);
    for (const stream of open) {
      if (!stream.wrote) stream.write(stream.writer.heartbeat());
      stream.wrote = false;
    }
  };
  const expiries = createExpiries<Stream>(
    (stream) => stream.member.data,
    (stream) => stream.close('token_expired'),
    clock,
  );
  const host = {
    slowConsumerBytes: config.server.slowConsumerBytes,
    join: topics.joinStream,
    leave: topics.leaveStream,
    identify(stream: Stream, identity: Identity | undefined) {
      expiries.expireAt(stream, identity?.expires);
      subjects.hold(stream, identity);
    },
    schedule(stream: Stream) {
      if (dirty.push(stream) === 1) queueMicrotask(flushAll);
    },
    drained(stream: Stream) {
      if (stream.state !== undefined) sessions.drain(stream, stream.state);
    },
    ended(stream: Stream, label: CloseMetricLabel) {
      expiries.clear(stream);
      subjects.release(stream);
      for (const topic of [...stream.member.data.topics]) topics.leaveStream(stream.member, topic);
      if (stream.state !== undefined) sessions.close(stream.state);
      // A stream refused before it started was never counted as open.
      if (!open.delete(stream)) return;
      stats.disconnect(stream.writer.format);
      stats.close(label, stream.writer.format);
    },
  };

  async function start(request: Request, format: StreamFormat, refuse: (body: RefusalBody) => Response) {
    const url = new URL(request.url);
    const channels = url.searchParams.getAll('channel');
    if (channels.length === 0) {
      return refuse({ code: 'bad_request', message: 'name at least one channel: /events?channel=orders' });
    }
    const frames: Record<string, unknown>[] = [];
    for (const [id, channel] of channels.entries()) {
      const filter = url.searchParams.get(`filter.${channel}`);
      let parsed: unknown;
      try {
        parsed = filter === null ? undefined : JSON.parse(filter);
      } catch {
        return refuse({ code: 'bad_request', message: `filter.${channel} is not JSON`, channel });
      }
      const last = url.searchParams.get(`last.${channel}`);
      frames.push({
        type: 'subscribe',
        id,
        channel,
        filter: parsed,
        // Handed to the engine as sent: its subscribe decides what `last` means.
        last: last === null ? undefined : /^\d+$/.test(last) ? Number(last) : last,
      });
    }
    // The browser's own reconnect sends Last-Event-ID and keeps the first URL: the header is the newer cursor.
    const cursor = request.headers.get('last-event-id') ?? url.searchParams.get('since') ?? '';
    const since: ReadonlyMap<string, CursorPosition> | undefined = cursor === '' ? undefined : decodeCursor(cursor);
    for (const frame of frames) {
      // A cursor that cannot be read resumes nothing: an epoch no stream has, so every channel is recovered: false.
      if (cursor !== '')
        frame['since'] = since === undefined ? { epoch: '', seq: 0 } : since.get(String(frame['channel']));
    }

    let identity: Identity | undefined;
    const token = access.enabled ? tokenFrom(request, undefined, queryToken) : undefined;
    if (token !== undefined) {
      const verified = await access.verify(token, tokenWaitMs);
      if (!verified.ok) {
        return refuse({
          code: verified.reason === 'unavailable' ? 'not_ready' : 'token_invalid',
          message: verified.message,
        });
      }
      identity = verified.identity;
    }
    const admitted = admitMultiplexed({
      offered: true,
      stopping: options.stopping(),
      databaseDown: listener.state === 'down',
      connections: stats.connections,
      maxConnections: config.server.maxConnections,
      maxSockets: options.maxSockets,
    });
    if (!admitted.ok) return refuse({ code: admitted.reason, message: admitted.message });
    stats.connect(format);
    const unready = await gate.ready();
    if (unready !== undefined) {
      stats.disconnect(format);
      return refuse({ code: unready.label, message: unready.message });
    }
    // The session gives the slot back when the stream ends, refused or not.
    if (identity !== undefined && !(await slots.take(identity.subject))) {
      stats.disconnect(format);
      const limit = config.auth?.maxConnectionsPerSubject;
      return refuse({ code: 'subject_limit', message: `this subject already holds ${limit} connections` });
    }

    const stream = new Stream(new StreamWriter(format, channels, since), host);
    stream.state = sessions.open(stream, identity, format);
    const answered = stream.answers(frames.length);
    for (const frame of frames) sessions.message(stream, stream.state, JSON.stringify(frame));
    const failed = await answered;
    if (failed !== undefined || stream.ended !== undefined || options.stopping()) {
      const cutOff = stream.ended === 'revoked' || stream.ended === 'disconnected';
      stream.close('shutdown');
      stats.disconnect(format);
      // A revocation (or a disconnect) that reached the token while the stream opened: refused like a bad token.
      if (cutOff) return refuse({ code: 'token_invalid', message: 'the token was cut off while the stream opened' });
      if (failed === undefined) return refuse({ code: 'shutting_down', message: 'the stream ended before it started' });
      const code = failed['code'] as RefusalBody['code'];
      // Anonymous under [auth]: the channel needs a token this request did not bring.
      if (code === 'forbidden' && access.enabled && identity === undefined) {
        stats.authFailure('missing');
        return refuse({ code: 'token_missing', message: 'a token is required for this channel' });
      }
      const { message, channel, issues } = failed as Omit<RefusalBody, 'code'>;
      return refuse({ code, message, channel, issues });
    }
    open.add(stream);
    heartbeat ??= clock.setTimeout(tick, HEARTBEAT_TICK_MS);
    return new Response(stream.body, {
      headers: {
        ...corsHeaders(request),
        'content-type': CONTENT_TYPES[format],
        'cache-control': 'no-cache, no-store',
        // nginx and similar proxies otherwise hold the stream back in their buffers.
        'x-accel-buffering': 'no',
      },
    });
  }

  return {
    async open(request) {
      const format = formatOf(request);
      const refuse = (body: RefusalBody) => {
        stats.refuse(body.code, format);
        return refusal(request, body);
      };
      if (!gate.originAllowed(request))
        return refuse({ code: 'origin_not_allowed', message: 'this Origin is not allowed' });
      return start(request, format, refuse);
    },
    stop() {
      for (const stream of [...open]) stream.close('shutdown');
      clock.clearTimeout(heartbeat);
      heartbeat = undefined;
    },
    get size() {
      return open.size;
    },
  };
}
