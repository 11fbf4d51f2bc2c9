/**
 * As many concurrent clients as the server process's open-file limit allows (one fd per socket),
 * minus what the idle server already holds and a small margin (and no more than its admission takes
 * at that limit: the limit less 64), with one NOTIFY reaching all of
 * them. Server and clients share the machine, so the clients are spread over the generator
 * processes (each with its own limit) and over destination addresses 127.0.0.1..N.
 */

import { fileLimitSockets } from '../src/http/admission.ts';
import { fileLimit, openFiles } from './procstat.ts';
import { anomalies, type Context, clean, deliveredCell, type Outcome } from './scenario.ts';
import { SCHEMA_CHANNEL, startOurs } from './servers.ts';
import { check, mb, ms, num, ratio } from './stats.ts';
import { runTrial } from './trial.ts';

// Room for what the server may open while serving: a reconnecting query connection, a scrape.
const MARGIN = 32;
const QUICK_CAP = 2000;

/** Runs the fd-limit scenario on a fresh server of ours. */
export async function fdLimit(context: Context): Promise<Outcome> {
  const { rig, say } = context;
  const target = await startOurs({
    databaseUrl: rig.db.url,
    server: { max_connections: 1_000_000 },
    profileDir: context.profileDir,
  });
  let limit = 0;
  let idleFds = 0;
  let clients = 0;
  let result: Awaited<ReturnType<typeof runTrial>>;
  try {
    limit = fileLimit(target.pid);
    idleFds = openFiles(target.pid);
    // The server admits its file limit less FILE_RESERVE and refuses the rest with 503 file_limit.
    const room = Math.min(limit - idleFds - MARGIN, fileLimitSockets(limit));
    clients = context.quick ? Math.min(room, QUICK_CAP) : room;
    say(`fd limit: ours, ${num(clients)} clients (limit ${num(limit)}, ${idleFds} fds in use idle)`);
    result = await runTrial(rig, {
      label: target.label,
      target,
      channel: SCHEMA_CHANNEL,
      clients,
      size: 100,
      send: { kind: 'burst', count: 1 },
    });
  } finally {
    await target.stop();
  }
  const r = result;
  const kb = r.connected > 0 ? (r.rssIdleKb - r.rssEmptyKb) / r.connected : undefined;
  return {
    sections: [
      {
        title: 'Clients up to the fd limit',
        headers: [
          'server',
          'fd limit',
          'fds idle',
          'clients',
          'connected',
          'connect s',
          'received / expected',
          'RSS empty MB',
          'RSS idle MB',
          'KB / conn',
          'p50 ms',
          'p99 ms',
          'max ms',
        ],
        rows: [
          [
            r.label,
            num(limit),
            num(idleFds),
            num(clients),
            num(r.connected),
            num(r.connectMs / 1000, 2),
            deliveredCell(r),
            mb(r.rssEmptyKb),
            mb(r.rssIdleKb),
            num(kb, 1),
            ms(r.p50Ms),
            ms(r.p99Ms),
            ms(r.maxMs),
          ],
        ],
        notes: [
          `${num(rig.fleet.pids.length)} generator processes, destinations 127.0.0.1..${rig.addresses}; [server] max_connections raised so the fd limit, not the admission cap, is what binds.${context.quick ? ` --quick caps this at ${num(QUICK_CAP)} clients.` : ''}`,
          ...anomalies(r, 'fd limit'),
        ],
      },
    ],
    targets: [
      check(
        `fd-limit run (${num(clients)} clients): one NOTIFY reaches every client`,
        deliveredCell(r),
        ratio(r.received, clients),
        { min: 1 },
        clean(r),
      ),
    ],
  };
}
