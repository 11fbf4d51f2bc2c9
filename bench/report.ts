/**
 * The report: usage, the machine, the command, the targets with their ratios, every scenario's
 * tables and how the figures were measured. The same markdown goes to stdout and bench/RESULTS.md.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { fileLimit } from './procstat.ts';
import { num, renderSection, renderTargets, type Section, type TargetCheck } from './stats.ts';

/** What the report says about the run itself. */
export interface RunInfo {
  readonly command: string;
  readonly startedAt: Date;
  readonly seconds: number;
  readonly postgresVersion: string;
  readonly embedded: boolean;
  readonly generators: number;
  readonly addresses: number;
  readonly failures: readonly string[];
}

const USAGE = `Usage (from the repository root):

    bun run bench                     # full run, about 10 minutes; rewrites bench/RESULTS.md
    bun run bench --quick             # smoke test with smaller counts, about a minute; prints only
    bun run bench --only fanout       # one scenario (repeat --only or use commas; --scenario is the same):
                                      #   capacity, fanout, schema, multiplexed, latency, workers, large,
                                      #   fdlimit, auth, scale
    bun run bench --only scale --levels 20000
                                      # the scale scenario at other client counts (default 100,000 and
                                      #   250,000; --quick 5,000 and 10,000)
    bun run bench --profile           # also write CPU profiles (.cpuprofile + .md) of our server
    bun run bench --out FILE          # write the report to FILE (partial runs print only by default)
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres bun run bench
                                      # use that PostgreSQL instead of a throwaway embedded one`;

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  } catch {
    return 'unknown CPU';
  }
}

/** The whole report as markdown. */
export function renderReport(info: RunInfo, sections: readonly Section[], targets: readonly TargetCheck[]): string {
  const met = targets.filter((t) => t.ok === true).length;
  const machine = [
    `- ${availableParallelism()} CPUs (nproc), ${cpuModel()}`,
    `- ${num(totalmem() / 2 ** 30, 1)} GiB memory, Linux ${release()}, open-file limit ${num(fileLimit())}`,
    `- Bun ${Bun.version}, PostgreSQL ${info.postgresVersion} (${info.embedded ? 'embedded, started by the benchmark' : 'BENCH_DATABASE_URL'})`,
    `- server, PostgreSQL, ${info.generators} generator processes and the notifier all share this machine; clients connect over loopback to 127.0.0.1..${info.addresses}`,
  ];
  return [
    '# pg-notify-ws benchmark results',
    '',
    USAGE,
    '',
    '## Run',
    '',
    `\`${info.command}\` on ${info.startedAt.toISOString()}, ${num(info.seconds)} s.`,
    '',
    ...machine,
    ...(info.failures.length > 0 ? ['', '**Failures:**', ...info.failures.map((f) => `- ${f}`)] : []),
    '',
    `## Targets (${met} of ${targets.length} met; reported, not asserted)`,
    '',
    renderTargets(targets),
    '',
    '## Results',
    '',
    ...sections.map(renderSection),
    '## How it measures',
    '',
    '- Every payload is `{"r":RUN,"seq":SEQ,"t":SEND_MS,"p":"xxx…"}` padded to the exact size; SEND_MS is the notifier\'s `performance.timeOrigin + performance.now()`. Clients parse seq and t from the frame; a bitset per client finds duplicates, and order is checked per producer connection (commit order).',
    '- Notifier: 4 producer connections, each sending batches of `SELECT count(pg_notify(ch, rpad(…))) FROM generate_series(…)` (one transaction per batch), with a credit window of 512 KiB of payload ahead of the slowest open client. The fixed-rate scenario uses one connection and one notification per transaction.',
    '- Clients are Bun `WebSocket`s in the generator processes (bench/clients.ts), spread round-robin over the generators and destination addresses; raw LISTEN clients are postgres.js `sql.listen` connections in the same processes.',
    "- Multiplexed clients offer `pgws.v1` on `/`, send their subscribes once `ready` arrives and count as open once every `subscribed` answer is in; the tracker reads the payload out of each `message` frame and also checks the server's `seq` per channel. A client meant to get only a share (one channel of 100, one filter of 10) earns credit as unique × share, so the window means the same for every client. The replay is timed in the orchestrator process with its own socket.",
    '- A trial ends when every client has everything, or when no frame arrived for 3 s (then the rest is reported as lost).',
    "- CPU: utime + stime (+ reaped children) from /proc/<pid>/stat before and after the send-and-drain phase, as % of one core (200 % = this whole machine). srv = the server process tree, pg = the postmaster and all its children, gen = the generator processes, notif = the orchestrator (notifier) process, other = the machine's busy time (/proc/stat) not in those four: kernel threads and anything else running on the machine (a high value means the trial was disturbed). RSS = VmRSS of the server tree.",
    "- Two cores hold everything: from 100 clients up the generators use about three quarters of the machine and the frames/s ceiling is the machine's, so the ratios compare the servers under the same load rather than each server's own limit.",
    "- Latency = client receive time − send stamp, in an HdrHistogram (hdr-histogram-js, 3 significant digits: within 0.1 %), filled from each frame's stored latency after the measured window; p50/p99 over all frames of all clients.",
    '',
  ].join('\n');
}
