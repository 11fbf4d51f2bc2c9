/**
 * The notifier: producer connections sending as fast as the database takes them (one transaction per
 * batch), flow-controlled by a credit window so a burst measures what the chain sustains rather than how
 * soon a buffer overflows; or one at a time at a fixed rate. A payload, padded to its size, is
 * {"r":RUN,"seq":SEQ,"t":SEND_MS,"p":"xxx…"}; SEQ % producers names the producer, whose own must arrive
 * in order.
 */
import postgres from 'postgres';

/** The clock payloads are stamped and read with, in ms: sub-millisecond, comparable across processes. */
export const clock = (): number => performance.timeOrigin + performance.now();

/** Where credit comes from: the client processes' progress. */
export type Credit = { progress(): number; nextProgress(ms: number): Promise<void> };

/**
 * `pg_notify`, `pgws.notify` for payloads beyond 8000 bytes (bench/large.ts), or `pgws.send` for a durable
 * channel (bench/durable.ts; one counter row per channel, so producers on one channel commit in turn).
 */
export type NotifyFunction = 'pg_notify' | 'pgws.notify' | 'pgws.send';

/**
 * By SEQ's group G = floor(SEQ / producers): `channels` sends it to `${channel}${G % channels}`, `keys` adds
 * `"k":G % keys`. A group comes one from each producer, so no share waits on one producer alone.
 */
export type Spread = { readonly channels?: number | undefined; readonly keys?: number | undefined };

/** Notifications 0..count-1 of `run`, `size` bytes each. */
export interface Plan extends Spread {
  readonly channel: string;
  readonly via?: NotifyFunction | undefined;
  readonly run: number;
  readonly count: number;
  readonly size: number;
}

/** What was sent; `openLoop` is set when credit stalled and the rest went without flow control. */
export type Sent = { readonly sent: number; readonly firstSendMs: number; readonly openLoop: boolean };

/** The producer connections. */
export type Notifier = Awaited<ReturnType<typeof startNotifier>>;

const MAX_BATCH = 500;
// No credit for this long means a client lost frames for good: fall back to open-loop.
const STALL_MS = 2000;

/** Opens `producers` connections to `url`. */
export async function startNotifier(url: string, producers: number) {
  const connections = Array.from({ length: producers }, () =>
    postgres(url, {
      max: 1,
      onnotice: () => {},
      fetch_types: false,
      connection: { application_name: 'pgws-bench-notifier' },
    }),
  );
  await Promise.all(connections.map((sql) => sql`SELECT 1`));

  // PG: identical payloads in one transaction are folded into one; the sequence number keeps each
  // distinct, and rpad pads to the exact size (the prefix is always shorter than 100 bytes).
  const send = (sql: postgres.Sql, plan: Plan, start: number, end: number, step: number) => {
    const channels = plan.channels ?? 1;
    // PG: s, step and the divisions are int, so s / step is the group (integer division).
    const channel =
      channels > 1 ? sql`${plan.channel} || ((s / ${step}::int) % ${channels}::int)::text` : sql`${plan.channel}`;
    const key = plan.keys === undefined ? sql`` : sql`|| ',"k":' || ((s / ${step}::int) % ${plan.keys}::int)`;
    return sql`SELECT count(${sql(plan.via ?? 'pg_notify')}(${channel}, rpad('{"r":' || ${plan.run}::int || ',"seq":' || s ${key} || ',"t":' || ${clock().toFixed(3)}::text || ',"p":"', ${plan.size - 2}::int, 'x') || '"}'))
        FROM generate_series(${start}::int, ${end}::int, ${step}::int) AS s`;
  };

  // Notifications in flight allowed for a payload size (at least one batch per producer).
  const window = (size: number, windowBytes: number) => Math.max(producers, Math.floor(windowBytes / size));
  const batchFor = (w: number) => Math.max(1, Math.min(MAX_BATCH, Math.floor(w / producers / 2)));

  return {
    producers,
    /** The credit step the client processes report in: a quarter of the window. */
    step: (size: number, windowBytes: number) => Math.max(1, Math.floor(window(size, windowBytes) / 4)),
    /** As fast as the credit allows: at most `windowBytes` of payload ahead of the slowest client. */
    async burst(
      plan: Plan & { readonly windowBytes: number; readonly credit: Credit; readonly deadlineMs: number },
    ): Promise<Sent> {
      const w = window(plan.size, plan.windowBytes);
      const batch = batchFor(w);
      const deadline = performance.now() + plan.deadlineMs;
      let issued = 0;
      let openLoop = false;
      const firstSendMs = clock();
      // Producer p owns sequence numbers p, p + P, p + 2P, …: its own commits keep them in order.
      const produce = async (sql: postgres.Sql, p: number) => {
        for (let first = p; first < plan.count; first += batch * producers) {
          const last = Math.min(plan.count - 1, first + (batch - 1) * producers);
          const size = Math.floor((last - first) / producers) + 1;
          let waitingSince = performance.now();
          let seen = plan.credit.progress();
          while (!openLoop && issued + size - plan.credit.progress() > w) {
            await plan.credit.nextProgress(STALL_MS);
            const now = plan.credit.progress();
            if (now !== seen) {
              seen = now;
              waitingSince = performance.now();
            } else if (performance.now() - waitingSince >= STALL_MS) {
              openLoop = true;
            }
          }
          if (performance.now() > deadline) return;
          issued += size;
          await send(sql, plan, first, last, producers);
        }
      };
      await Promise.all(connections.map((sql, p) => produce(sql, p)));
      return { sent: Math.min(issued, plan.count), firstSendMs, openLoop };
    },
    /** One producer, one notification per transaction, `rate` a second. */
    async paced(plan: Plan & { readonly rate: number }): Promise<Sent> {
      const sql = connections[0];
      if (sql === undefined) throw new Error('notifier has no connection');
      const started = performance.now();
      const firstSendMs = clock();
      for (let i = 0; i < plan.count; i++) {
        const due = started + (i * 1000) / plan.rate - performance.now();
        if (due > 0) await Bun.sleep(due);
        await send(sql, plan, i, i, 1);
      }
      return { sent: plan.count, firstSendMs, openLoop: false };
    },
    end: async () => {
      await Promise.all(connections.map((sql) => sql.end({ timeout: 2 })));
    },
  };
}
