/**
 * Whether a WebSocket upgrade may proceed, and with what socket data: the origin allow-list, then, for
 * plain mode, the channel's admission and token; for multiplexed mode, the subprotocol and the offered
 * token; then, for both, a NOTIFY round trip through the current LISTEN connection, and a slot of the
 * token's subject (`[auth] max_connections_per_subject`). A refusal is the HTTP response to send; an
 * acceptance is what `server.ts` hands to Bun's `upgrade`.
 */
import type { Access } from '../auth/access.ts';
import type { SubjectSlots } from '../auth/slots.ts';
import type { Identity } from '../auth/tokens.ts';
import { ChannelLimitError } from '../base/errors.ts';
import type { Logger } from '../base/log.ts';
import { channelFromPath } from '../base/name.ts';
import { type RefusalLabel, Refusals, refusalHeaders } from '../base/refusals.ts';
import type { Stats } from '../base/stats.ts';
import type { Catalog } from '../channels/catalog.ts';
import type { Config } from '../config/load.ts';
import type { Canary } from '../db/canary.ts';
import type { Listener } from '../db/listener.ts';
import { admit, admitMultiplexed } from './admission.ts';
import { createGate } from './gate.ts';
import { BEARER_PREFIX, type Offer, readOffer, SUBPROTOCOL, tokenFrom } from './offer.ts';
import type { Accepted, MultiplexedData, PlainData } from './sockets.ts';

/** What the upgrade decisions read. */
export interface UpgradeOptions {
  config: Config;
  catalog: Catalog;
  /** Used only to acquire and release channels, and to see whether the database is up. */
  listener: Pick<Listener, 'acquire' | 'release' | 'has' | 'channelCount' | 'state' | 'generation'>;
  /** Upgrades wait (up to one canary interval) for a round trip through the current LISTEN connection. */
  canary: Pick<Canary, 'verified'>;
  access: Access;
  /** `[auth] max_connections_per_subject`, counted for the whole instance. */
  slots: SubjectSlots;
  stats: Stats;
  log: Logger;
  stopping: () => boolean;
  /** Client sockets the process's open-file limit allows (see admission.ts `fileLimitSockets`). */
  maxSockets: number;
}

/** The upgrade decisions of one server. */
export interface Upgrades {
  /** A refusal for `request`, or an acceptance; `pathname` `/` is the multiplexed endpoint. */
  decide(request: Request, pathname: string): Promise<Response | Accepted>;
  /** The answer to a refusal made after a decision (Bun's upgrade failed, or the server is stopping). */
  refuse(label: RefusalLabel, message: string): Response;
}

/** Creates the decisions. */
export function createUpgrades(options: UpgradeOptions): Upgrades {
  const { config, catalog, listener, access, slots, stats, log } = options;
  const gate = createGate(options);
  const limits = config.server;
  const queryToken = config.auth?.queryToken ?? false;
  // A token waits as long as an upgrade waits for the canary: for the revocations to be current.
  const tokenWaitMs = config.database.canaryIntervalMs;
  const subjectLimit = () =>
    refuse('subject_limit', `this subject already holds ${config.auth?.maxConnectionsPerSubject} connections`);
  const common = () => ({ closedBy: undefined, expiry: undefined, deadline: undefined, topics: [] as string[] });

  const refuse = (label: RefusalLabel, message: string) => {
    stats.refuse(label, 'ws');
    return new Response(`${message}\n`, { status: Refusals[label].status, headers: refusalHeaders(label) });
  };

  /** Holds a connection slot while the canary proves notifications arrive; undefined once it has. */
  async function ready(): Promise<Response | undefined> {
    const refused = await gate.ready();
    return refused === undefined ? undefined : refuse(refused.label, refused.message);
  }

  /** Plain mode with `[auth]`: a channel that is not public needs a token granting `r` on it. */
  async function authorizePlain(request: Request, channel: string): Promise<Response | Identity | undefined> {
    if (!access.enabled || access.permits(undefined, channel, 'r')) return undefined;
    const token = tokenFrom(request, undefined, queryToken);
    if (token === undefined) {
      stats.authFailure('missing');
      return refuse('token_missing', 'a token is required for this channel');
    }
    const verified = await access.verify(token, tokenWaitMs);
    if (!verified.ok)
      return refuse(verified.reason === 'unavailable' ? 'not_ready' : 'token_invalid', verified.message);
    if (!access.permits(verified.identity, channel, 'r')) {
      stats.authFailure('forbidden');
      return refuse('forbidden', `the token does not grant reading "${channel}"`);
    }
    return verified.identity;
  }

  async function plain(request: Request, pathname: string, offered: string | null): Promise<Response | Accepted> {
    const decision = admit({
      channel: channelFromPath(pathname),
      allowed: catalog.allows,
      stopping: options.stopping(),
      databaseDown: listener.state === 'down',
      connections: stats.connections,
      maxConnections: limits.maxConnections,
      maxSockets: options.maxSockets,
      listening: listener.has,
      channels: listener.channelCount,
      maxChannels: limits.maxChannels,
    });
    if (!decision.ok) return refuse(decision.reason, decision.message);
    const channel = decision.channel;
    const authorized = await authorizePlain(request, channel);
    if (authorized instanceof Response) return authorized;
    stats.connect('ws');
    const unready = await ready();
    if (unready !== undefined) {
      stats.disconnect('ws');
      return unready;
    }
    if (authorized !== undefined && !(await slots.take(authorized.subject))) {
      stats.disconnect('ws');
      return subjectLimit();
    }
    const giveBack = () => {
      stats.disconnect('ws');
      if (authorized !== undefined) slots.give(authorized.subject);
    };
    const generation = listener.generation;
    try {
      await listener.acquire(channel);
    } catch (error) {
      giveBack();
      if (error instanceof ChannelLimitError) return refuse('channel_limit', error.message);
      log.warn('LISTEN failed; upgrade refused', { channel, error });
      return refuse('database_down', 'could not LISTEN on the channel; retry shortly');
    }
    // The LISTEN is in place before the socket opens: every NOTIFY committed after open reaches it.
    const data: PlainData = {
      mode: 'plain',
      channel,
      generation,
      identity: authorized,
      holder: undefined,
      ...common(),
    };
    return {
      data,
      headers: { 'sec-websocket-protocol': plainProtocol(offered) },
      undo() {
        giveBack();
        listener.release(channel);
      },
    };
  }

  async function multiplexed(request: Request, offer: Offer): Promise<Response | Accepted> {
    const decision = admitMultiplexed({
      offered: offer.multiplexed,
      stopping: options.stopping(),
      databaseDown: listener.state === 'down',
      connections: stats.connections,
      maxConnections: limits.maxConnections,
      maxSockets: options.maxSockets,
    });
    if (!decision.ok) return refuse(decision.reason, decision.message);
    stats.connect('ws');
    const unready = await ready();
    if (unready !== undefined) {
      stats.disconnect('ws');
      return unready;
    }
    // A browser sees close codes, not statuses: a bad token still opens the socket, to close it with 4401,
    // and so does one whose subject holds its limit (4429). Revocations not yet current: retry shortly.
    const token = access.enabled ? tokenFrom(request, offer, queryToken) : undefined;
    const verified = token === undefined ? undefined : await access.verify(token, tokenWaitMs);
    if (verified?.ok === false && verified.reason === 'unavailable') {
      stats.disconnect('ws');
      return refuse('not_ready', verified.message);
    }
    const identity = verified?.ok ? verified.identity : undefined;
    const slot = identity !== undefined && (await slots.take(identity.subject));
    const data: MultiplexedData = {
      mode: 'multiplexed',
      offered:
        verified === undefined
          ? undefined
          : !verified.ok
            ? { refused: verified.reason === 'expired' ? 'token_expired' : 'token_invalid' }
            : slot
              ? { identity: verified.identity }
              : { refused: 'subject_limit' },
      peer: undefined,
      session: undefined,
      ...common(),
    };
    return {
      data,
      // Set explicitly: Bun would otherwise echo the first value offered, which may be a bearer token.
      headers: { 'sec-websocket-protocol': SUBPROTOCOL },
      undo() {
        stats.disconnect('ws');
        if (slot) slots.give(identity.subject);
      },
    };
  }

  return {
    refuse,
    async decide(request, pathname) {
      if (!gate.originAllowed(request)) return refuse('origin_not_allowed', 'this Origin is not allowed');
      const offered = request.headers.get('sec-websocket-protocol');
      return pathname === '/' ? multiplexed(request, readOffer(offered)) : plain(request, pathname, offered);
    },
  };
}

/**
 * The subprotocol a plain socket answers with: plain mode defines none, so the first one offered that is
 * not a `bearer.` token, else none at all (an empty value makes Bun leave the header out). Bun's default,
 * echoing the first value offered, would send a token back in the clear.
 */
function plainProtocol(offered: string | null): string {
  const values = (offered ?? '').split(',').map((value) => value.trim());
  return values.find((value) => value !== '' && !value.startsWith(BEARER_PREFIX)) ?? '';
}
