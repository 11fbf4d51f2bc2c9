/**
 * Capacity: 10 / 100 / 1,000 / 10,000 idle clients, one NOTIFY all must receive. Each level gets a
 * fresh server process so "empty" is really empty: RSS per idle connection = (RSS with the clients
 * connected − RSS before) ÷ clients. The bare bridge is measured the same way beside ours.
 */
import { anomalies, type Context, clean, deliveredCell, type Outcome } from './scenario.ts';
import { SCHEMA_CHANNEL, startBare, startOurs } from './servers.ts';
import { check, mb, ms, num, ratio, type TargetCheck, times } from './stats.ts';
import type { Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const KB_PER_CONNECTION_GOAL = 12;

// Below this many clients the allocator's and GC's own swings are larger than the clients' share.
const MEANINGFUL_CLIENTS = 1000;

const perConnectionKb = (r: TrialResult): number | undefined =>
  r.connected >= MEANINGFUL_CLIENTS ? (r.rssIdleKb - r.rssEmptyKb) / r.connected : undefined;

async function level(
  context: Context,
  start: () => Promise<Target>,
  clients: number,
  channel: string,
): Promise<TrialResult> {
  const target = await start();
  try {
    return await runTrial(context.rig, {
      label: target.label,
      target,
      channel,
      clients,
      size: 100,
      send: { kind: 'burst', count: 1 },
    });
  } finally {
    await target.stop();
  }
}

/** Runs the capacity scenario: both servers, fresh per level, one NOTIFY per level. */
export async function capacity(context: Context): Promise<Outcome> {
  const { rig, say } = context;
  const levels = context.quick ? [10, 100, 1000] : [10, 100, 1000, 10_000];
  const results: { bare: TrialResult; ours: TrialResult }[] = [];
  for (const clients of levels) {
    say(`capacity: bare bridge, ${num(clients)} clients`);
    const bare = await level(context, () => startBare(rig.db.url), clients, 'bench_capacity');
    say(`capacity: ours, ${num(clients)} clients`);
    const ours = await level(
      context,
      () => startOurs({ databaseUrl: rig.db.url, profileDir: context.profileDir }),
      clients,
      SCHEMA_CHANNEL,
    );
    results.push({ bare, ours });
  }
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const { bare, ours } of results) {
    for (const r of [bare, ours]) {
      const kb = perConnectionKb(r);
      rows.push([
        r.label,
        num(r.clients),
        `${num(r.connected)}/${num(r.clients)}`,
        num(r.connectMs / 1000, 2),
        num(r.connected / (r.connectMs / 1000)),
        deliveredCell(r),
        mb(r.rssEmptyKb),
        mb(r.rssIdleKb),
        num(kb, 1),
        r === ours ? times(ratio(kb, perConnectionKb(bare))) : '',
        ms(r.p50Ms),
        ms(r.p99Ms),
        ms(r.maxMs),
      ]);
      notes.push(...anomalies(r, `${r.label}, ${num(r.clients)} clients`));
    }
  }
  const targets: TargetCheck[] = [];
  const top = results.at(-1);
  if (top !== undefined) {
    const kb = perConnectionKb(top.ours);
    const measured = `${num(kb, 1)} KB per idle connection at ${num(top.ours.connected)} clients (bare: ${num(perConnectionKb(top.bare), 1)} KB)`;
    targets.push(
      check(
        `memory ≤ ${KB_PER_CONNECTION_GOAL} KB per idle connection above the empty process`,
        measured,
        kb === undefined ? undefined : kb / KB_PER_CONNECTION_GOAL,
        { max: 1 },
      ),
    );
  }
  for (const { ours } of results) {
    targets.push(
      check(
        `capacity ${num(ours.clients)} clients: one NOTIFY reaches every client`,
        deliveredCell(ours),
        ratio(ours.received, ours.clients),
        { min: 1 },
        clean(ours),
      ),
    );
  }
  return {
    sections: [
      {
        title: 'Capacity: idle clients, one NOTIFY',
        headers: [
          'server',
          'clients',
          'connected',
          'connect s',
          'connects/s',
          'received / expected',
          'RSS empty MB',
          'RSS idle MB',
          'KB / conn',
          '× bare KB',
          'p50 ms',
          'p99 ms',
          'max ms',
        ],
        rows,
        notes: [
          `A fresh server process per row. KB / conn = (RSS with the clients connected and idle − RSS of the empty process) ÷ clients, shown from ${num(MEANINGFUL_CLIENTS)} clients up (below that, heap noise is larger than the clients' share). The memory target's ratio = KB ÷ 12.`,
          ...notes,
        ],
      },
    ],
    targets,
  };
}
