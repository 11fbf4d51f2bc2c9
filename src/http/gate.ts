/**
 * Two checks every connection passes, whatever its transport: the `Origin` allow-list, and the proof that
 * notifications arrive before a client is served (a NOTIFY round trip through the current LISTEN connection).
 * WebSocket upgrades (`upgrade.ts`) and `GET /events` streams (`streams.ts`) each answer a refusal in their own
 * form: text for an upgrade, JSON for a stream.
 */

import type { RefusalLabel } from '../base/refusals.ts';
import type { Stats } from '../base/stats.ts';
import type { Config } from '../config/load.ts';
import type { Canary } from '../db/canary.ts';
import type { Listener } from '../db/listener.ts';

/** Why a connection is not served: its label (and so its status) and a message safe to send. */
export interface Refusal {
  readonly label: RefusalLabel;
  readonly message: string;
}

/** What the checks read. */
export interface GateOptions {
  config: Config;
  listener: Pick<Listener, 'state'>;
  /** Connections wait (up to one canary interval) for a round trip through the current LISTEN connection. */
  canary: Pick<Canary, 'verified'>;
  stats: Stats;
}

/** The checks of one server. */
export interface Gate {
  /** Whether the request's `Origin` passes `[server] allowed_origins`; a request without one always does. */
  originAllowed(request: Request): boolean;
  /** Resolves once notifications are proven to arrive (undefined), or with the refusal when they are not. */
  ready(): Promise<Refusal | undefined>;
}

/** Creates the checks. */
export function createGate(options: GateOptions): Gate {
  const { config, listener, canary, stats } = options;
  const allowed = config.server.allowedOrigins;
  return {
    originAllowed(request) {
      // Cross-site WebSocket hijacking: a page on another origin must not ride the user's network position.
      const origin = request.headers.get('origin');
      if (origin === null || allowed.length === 0 || allowed.includes(origin)) return true;
      stats.authFailure('origin');
      return false;
    },
    async ready() {
      // Accept no client that cannot be served: behind a transaction-mode pooler LISTEN succeeds and
      // nothing is ever delivered, so only a round trip through the current connection proves it works.
      // At startup this also waits out the first connect.
      if (await canary.verified(config.database.canaryIntervalMs)) return undefined;
      if (listener.state !== 'up')
        return { label: 'database_down', message: 'database connection is down; retry shortly' };
      return { label: 'not_ready', message: 'notifications are not arriving from the database yet; retry shortly' };
    },
  };
}
