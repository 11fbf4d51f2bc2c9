/**
 * The auth scenario's part of the report (bench/auth.ts runs it): connection setup and fan-out with
 * auth off and on side by side as ratios, the expiry storm's table, and the two targets from the
 * issue (fan-out ≥ 0.98×, setup rate ≥ 0.8×), reported, never asserted.
 */
import type { StormResult } from './expiry.ts';
import {
  anomalies,
  clean,
  INTEGRITY_HEADERS,
  integrityCells,
  median,
  type Outcome,
  spread,
  TAIL_HEADERS,
  tailCells,
} from './scenario.ts';
import { check, ms, num, ratio, type Section, times } from './stats.ts';
import type { TrialResult } from './trial.ts';

/** Holder processes that open the setup sockets (named in the notes). */
export const HOLDERS = 2;

/** One connection-setup run. */
export interface Setup {
  readonly label: string;
  readonly sockets: number;
  readonly opened: number;
  readonly failed: number;
  readonly firstError: string | undefined;
  readonly ms: number;
  readonly rate: number;
  readonly cpu: number;
  /** Server CPU time per socket set up, in µs: steadier than the rate on a machine shared with the clients. */
  readonly cpuPerSocketUs: number;
}

/** The run with the median rate. */
export const bySetupRate = (results: readonly Setup[]) =>
  [...results].sort((a, b) => a.rate - b.rate)[Math.floor((results.length - 1) / 2)];

/** The sections and targets of the auth scenario. */
export function authReport(
  setups: Record<'off' | 'on', Setup[]>,
  fanouts: Record<'off' | 'on', TrialResult[]>,
  storm: StormResult | undefined,
  setupRounds: number,
  rounds: number,
): Outcome {
  const medianOf = (values: readonly number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
  const cpuOff = medianOf(setups.off.map((s) => s.cpuPerSocketUs));
  const cpuOn = medianOf(setups.on.map((s) => s.cpuPerSocketUs));
  const [setupOff, setupOn] = [bySetupRate(setups.off), bySetupRate(setups.on)];
  const [fanOff, fanOn] = [median(fanouts.off), median(fanouts.on)];
  const setupRows = (['off', 'on'] as const).map((variant) => {
    const r = bySetupRate(setups[variant]);
    const rates = setups[variant].map((s) => s.rate);
    return [
      `auth ${variant}`,
      num(r?.sockets),
      `${num(r?.opened)}/${num(r?.sockets)}`,
      ms(r?.ms),
      num(r?.rate),
      rates.length < 2 ? '' : `${num(Math.min(...rates))}–${num(Math.max(...rates))}`,
      num(r?.cpu),
      times(ratio(r?.rate, setupOff?.rate)),
      num(medianOf(setups[variant].map((s) => s.cpuPerSocketUs))),
      times(ratio(medianOf(setups[variant].map((s) => s.cpuPerSocketUs)), cpuOff)),
    ];
  });
  const fanRows = (['off', 'on'] as const).flatMap((variant) => {
    const r = median(fanouts[variant]);
    if (r === undefined) return [];
    return [
      [
        r.label,
        ...integrityCells(r),
        num(r.framesPerSecond),
        spread(fanouts[variant]),
        times(ratio(r.framesPerSecond, fanOff?.framesPerSecond)),
        ...tailCells(r),
      ],
    ];
  });
  const failedSetups = [...setups.off, ...setups.on].filter((s) => s.failed > 0);
  const sections: Section[] = [
    {
      title: 'Authorization: connection setup, auth off vs on (multiplexed, token as subprotocol)',
      headers: [
        'server',
        'sockets',
        'ready',
        'setup ms',
        'sockets/s',
        'range of runs',
        'CPU srv %',
        '× auth off',
        'srv CPU µs/socket',
        'CPU × auth off',
      ],
      rows: setupRows,
      notes: [
        `Median of ${setupRounds} run${setupRounds === 1 ? '' : 's'} by sockets/s, servers taking turns; "srv CPU µs/socket" is the server's CPU time over the run per socket set up (median of the runs), which the clients sharing the two cores disturb less than the rate. A socket counts once its \`ready\` frame arrives (upgrade, token verified with jose, session opened); ${HOLDERS} holder processes open them 64 at a time each over 127.0.0.1..8. With auth on each socket offers its own HS256 token (\`bearer.T\`); with auth off, only \`pgws.v1\`.`,
        ...failedSetups.map(
          (s) => `- ${s.label}: ${num(s.failed)} sockets failed (${s.firstError ?? 'no error text'})`,
        ),
      ],
    },
    {
      title: 'Authorization: fan-out, auth off vs on (1,000 plain clients, 100 B)',
      headers: ['server', ...INTEGRITY_HEADERS, 'frames/s', 'range of runs', '× auth off', ...TAIL_HEADERS],
      rows: fanRows,
      notes: [
        `Median of ${rounds} run${rounds === 1 ? '' : 's'} by frames/s, servers taking turns, after one unreported warm-up round each; measured as in the fan-out table but with a 64 KiB credit window (a progress report every 164 notifications rather than every 1,310, so a slow moment on this shared machine does not end a run early). Auth on: every client's URL carries the token in \`?token=\` (query_token = true); it is checked once, at the upgrade.`,
        ...(['off', 'on'] as const).flatMap((v) =>
          fanouts[v].flatMap((r, i) => [
            ...anomalies(r, `auth ${v}, run ${i + 1}`),
            // The target needs every run clean, not just the median one: say which was not, and how.
            ...(clean(r)
              ? []
              : [
                  `- auth ${v}, run ${i + 1}: ${num(r.received)} of ${num(r.expected)} frames received (lost ${num(r.lost)}, dup ${num(r.duplicated)}, reordered ${num(r.reordered)}) at ${num(r.framesPerSecond)} frames/s`,
                ]),
          ]),
        ),
      ],
    },
  ];
  if (storm !== undefined) sections.push(stormSection(storm));
  const targets = [
    check(
      'fan-out with auth on ≥ 0.98 × auth off, 1,000 clients, 100 B, nothing lost',
      `${num(fanOn?.framesPerSecond)} vs ${num(fanOff?.framesPerSecond)} frames/s`,
      ratio(fanOn?.framesPerSecond, fanOff?.framesPerSecond),
      { min: 0.98 },
      [...fanouts.on, ...fanouts.off].every(clean),
    ),
    check(
      `connection setup with auth on ≥ 0.8 × auth off, ${num(setupOn?.sockets)} multiplexed sockets`,
      `${num(setupOn?.rate)} vs ${num(setupOff?.rate)} sockets/s (server CPU ${num(cpuOn)} vs ${num(cpuOff)} µs per socket)`,
      ratio(setupOn?.rate, setupOff?.rate),
      { min: 0.8 },
      failedSetups.length === 0,
    ),
  ];
  return { sections, targets };
}

function stormSection(s: StormResult): Section {
  return {
    title: `Authorization: ${num(s.sockets)} tokens expiring in the same second`,
    headers: [
      'sockets ready',
      'closed 4401',
      'other closes',
      'first close ms',
      'p50 ms',
      'p99 ms',
      'last close ms',
      'ping p50 before ms',
      'ping max before ms',
      'ping max in storm ms',
      'pings in storm',
    ],
    rows: [
      [
        `${num(s.connected)}/${num(s.sockets)}`,
        num(s.closed4401),
        num(s.otherCloses),
        ms(s.firstClose),
        ms(s.p50Close),
        ms(s.p99Close),
        ms(s.lastClose),
        ms(s.pingBeforeP50),
        ms(s.pingBeforeMax),
        ms(s.pingStormMax),
        num(s.pings),
      ],
    ],
    notes: [
      `Every token has the same \`exp\`; the server closes each socket at exp + 5 s (the clock tolerance), "the deadline". Close times are when each client's close event fired, minus the deadline (both Date.now() on this machine), so they include the holders' own event loops working through their share of closes. The ping columns are one more client's pgws.v1 \`ping\` → \`pong\` round trips, sent 1 ms apart from 1.5 s before the deadline: "in storm" is the worst round trip of a ping sent from 100 ms before the deadline to the last close, i.e. how long the server's event loop was held. Measured, not asserted.`,
      ...(s.margin < 0
        ? [
            `- connecting the sockets overran the deadline by ${ms(-s.margin)} ms: some closes overlapped the connect phase`,
          ]
        : []),
      ...(s.connectFailures > 0
        ? [`- ${num(s.connectFailures)} sockets failed to connect (${s.firstError ?? 'no error text'})`]
        : []),
    ],
  };
}
