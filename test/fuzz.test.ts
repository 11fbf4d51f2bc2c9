/**
 * Seeded fuzzing, bounded in count and time: payloads into schema and raw channels, hand-made client
 * frames, channel names in upgrade URLs, and mutated configs. The seed is printed; `FUZZ_SEED=<seed>`
 * replays a run and `FUZZ_SCALE=<n>` multiplies every count (`bun run soak`).
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import * as v from 'valibot';
import { ConfigError } from '../src/base/errors.ts';
import { parseConfig } from '../src/config/load.ts';
import { buildInlineSchema } from '../src/schema/compile.ts';
import { connect, type TestClient, upgradeStatus } from './client.ts';
import { exchange, judge, randomScript, upgradeRequest } from './fuzz/frames.ts';
import { type FuzzMessage, randomMessage } from './fuzz/messages.ts';
import { mutateConfig } from './fuzz/mutate.ts';
import { expectedChannel, randomChannelPath } from './fuzz/paths.ts';
import { randomPayload, SCHEMA_CASES } from './fuzz/payloads.ts';
import { rngFor, SCALE, SEED, scaled, Tally } from './fuzz/random.ts';
import { databaseUrl, metric, startBridge, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux, SUBPROTOCOL } from './mux.ts';
import { spawnServer } from './process.ts';
import { serverFrameProblem } from './server-frames.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

console.log(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED}), scale ${SCALE}`);

/** Per-test time limit: the base budget grows with the scale, every wait inside has its own timeout. */
const budget = (ms: number) => ms * SCALE + 20_000;

/** A query connection for NOTIFYs to a server running as its own process. */
function queryClient() {
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  return Object.assign(sql, { [Symbol.asyncDispose]: () => sql.end({ timeout: 1 }) });
}

/** Runs `task` over `items` with at most `width` in flight. */
async function inParallel<T>(
  items: readonly T[],
  width: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

/** Numbers JSON.parse cannot hold exactly: they reach a schema channel's client changed. */
/**
 * Whether a JSON text holds a number literal a double cannot represent (an integer literal beyond 2^53
 * that rounds, or a magnitude that overflows): the server refuses those on schema channels. Computed
 * independently of src/schema/json-numbers.ts, from the source text JSON.parse hands its reviver.
 */
function hasInexactNumber(text: string): boolean {
  let inexact = false;
  JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => {
    const source = context?.source;
    if (typeof value === 'number' && source !== undefined) {
      if (!Number.isFinite(value)) inexact = true;
      else if (/^-?\d+$/.test(source) && BigInt(source) !== BigInt(value)) inexact = true;
    }
    return value;
  });
  return inexact;
}

describe('payload fuzzing', () => {
  test(
    'random payloads never crash the bridge; every frame matches its schema and the counts add up',
    async () => {
      const rng = rngFor('payloads');
      const channels = SCHEMA_CASES.map((c) => ({
        case: c,
        name: uniqueChannel(`fz_${c.key}`),
        schema: buildInlineSchema(c.definition),
      }));
      const raw = uniqueChannel('fz_raw');
      const toml = stringifyToml({
        channels: Object.fromEntries([
          ...channels.map((c) => [c.name, { schema: c.case.definition }]),
          [raw, { description: 'raw' }],
        ]),
      });
      await using t = await startBridge(toml);
      const clients = new Map<string, TestClient>();
      for (const name of [...channels.map((c) => c.name), raw]) clients.set(name, await connect(t.wsUrl(name)));
      const expected = new Map<string, string[]>([...clients.keys()].map((name) => [name, []]));
      const tally = new Tally();
      let inexact = 0;

      const count = scaled(3000);
      for (let i = 0; i < count; i++) {
        const target = rng.chance(0.15) ? undefined : rng.pick(channels);
        const payload = randomPayload(rng, target?.case ?? rng.pick(SCHEMA_CASES));
        const name = target?.name ?? raw;
        try {
          await t.notify(name, payload.text);
        } catch (error) {
          // PostgreSQL's own refusals (8000-byte limit, NUL bytes) are not ours to count.
          const message = error instanceof Error ? error.message : String(error);
          const known = /payload string too long|invalid byte sequence|null character not permitted/.exec(message);
          expect(
            known,
            `pg_notify failed for a reason other than PostgreSQL's payload rules: ${message}`,
          ).not.toBeNull();
          tally.add(`db refused (${known?.[0]})`);
          continue;
        }
        // The driver sends text as UTF-8, so a lone surrogate arrives as U+FFFD.
        const sent = payload.text.toWellFormed();
        if (target === undefined) {
          expected.get(raw)?.push(sent);
          tally.add('raw delivered');
          continue;
        }
        let input: unknown;
        try {
          input = JSON.parse(sent);
        } catch {
          tally.add('refused json');
          continue;
        }
        if (hasInexactNumber(sent)) {
          inexact += 1;
          tally.add('refused json');
          continue;
        }
        const result = v.safeParse(target.schema, input);
        if (!result.success) {
          tally.add('refused schema');
          continue;
        }
        expected.get(name)?.push(JSON.stringify(result.output));
        tally.add(`accepted (${payload.how})`);
      }

      // After the batch, a valid payload on each channel still arrives, after everything before it.
      for (const c of channels) {
        const sentinel = JSON.stringify(v.parse(c.schema, c.case.valid(rng)));
        await t.notify(c.name, sentinel);
        expected.get(c.name)?.push(sentinel);
      }
      await t.notify(raw, 'sentinel');
      expected.get(raw)?.push('sentinel');

      for (const [name, frames] of expected) {
        const client = clients.get(name) as TestClient;
        await client.received(frames.length, 20_000);
        expect(client.messages).toEqual(frames);
        const received = await metric(t.url, 'pgws_notifications_received_total', { channel: name });
        const json = await metric(t.url, 'pgws_notifications_invalid_total', { channel: name, reason: 'json' });
        const schema = await metric(t.url, 'pgws_notifications_invalid_total', { channel: name, reason: 'schema' });
        expect(received - json - schema).toBe(client.messages.length);
        expect(await metric(t.url, 'pgws_frames_delivered_total', { channel: name })).toBe(client.messages.length);
      }
      for (const c of channels) {
        for (const frame of clients.get(c.name)?.messages ?? []) {
          const result = v.safeParse(c.schema, JSON.parse(frame));
          expect(result.success, `a frame on ${c.case.key} fails its schema: ${frame.slice(0, 200)}`).toBe(true);
        }
      }
      for (const client of clients.values()) client.socket.close();
      const accepted = [...tally.counts].filter(([k]) => k.startsWith('accepted')).reduce((sum, [, n]) => sum + n, 0);
      const refused = tally.get('refused json') + tally.get('refused schema');
      console.log(
        `fuzz payloads: tried ${count}, accepted ${accepted}, refused ${refused}, raw ${tally.get('raw delivered')}, refused for a number a double cannot hold ${inexact} | ${tally.line()}`,
      );
    },
    budget(30_000),
  );

  test('refuses big integers and overflowing numbers on a schema channel instead of delivering them rounded or null', async () => {
    const channel = uniqueChannel('fz_num');
    await using t = await startBridge(`[channels."${channel}".schema]\ntype = "object"\n`);
    using client = await connect(t.wsUrl(channel));
    const refused = [
      '{"id":9007199254740993}',
      '{"n":1e400}',
      '{"n":-1e400}',
      '{"a":[1,{"b":123456789012345678901234567890}]}',
    ];
    const kept = [
      '{"id":9007199254740991}',
      '{"id":"9007199254740993"}',
      '{"n":1e300,"x":0.30000000000000004}',
      '{"n":1e20}',
    ];
    for (const payload of [...refused, ...kept]) await t.notify(channel, payload);
    expect(await client.received(kept.length)).toEqual(kept.map((payload) => JSON.stringify(JSON.parse(payload))));
    expect(await metric(t.url, 'pgws_notifications_invalid_total', { channel, reason: 'json' })).toBe(refused.length);
    const logged = t.logs.filter((line) => line.includes('cannot be held exactly')).length;
    expect(logged).toBe(refused.length);
  });
});

describe('client frame fuzzing', () => {
  test(
    'random frames end every connection with a defined close or a TCP close, and other clients keep receiving',
    async () => {
      const rng = rngFor('frames');
      // The generator's sizes straddle 4096: below it a frame is read (1003/1007), above it only its size counts.
      await using server = await spawnServer({
        toml: '[server]\nmax_message_bytes = 4096\n',
        env: { DATABASE_URL: databaseUrl() },
      });
      await using sql = queryClient();
      const host = '127.0.0.1';
      const port = Number(server.url.port);
      const channels = [uniqueChannel('fz_frames'), uniqueChannel('fz_frames')];
      const good = await Promise.all(channels.map((name) => connect(server.wsUrl(name))));
      const goodCloses: string[] = [];
      for (const client of good) void client.closed.then(({ code, reason }) => goodCloses.push(`${code} ${reason}`));
      const tally = new Tally();
      const failures: string[] = [];
      const count = scaled(3000);
      let sequence = 0;
      const sendSequence = async () => {
        const payload = `seq ${++sequence}`;
        for (const name of channels) await sql`SELECT pg_notify(${name}, ${payload})`;
      };

      // Scripts are made as they are needed (in index order, so a seed replays): made all up front, the
      // event loop would stall long enough at a large scale for the server to reap the good clients as idle.
      await inParallel(
        Array.from({ length: count }, (_, index) => index),
        8,
        async (index) => {
          const { script, shape, clientCloses } = randomScript(
            rng,
            `/${encodeURIComponent(rng.pick(channels))}`,
            `${host}:${port}`,
          );
          if (index % 25 === 0) await sendSequence();
          const result = await exchange(host, port, script, 5000);
          const { outcome, ok } = judge(result, clientCloses);
          tally.add(outcome);
          if (!ok)
            failures.push(
              `#${index} (${shape}): ${outcome}${result.closed ? '' : ', not closed within 5 s after our FIN'}`,
            );
        },
      );
      await sendSequence();

      expect(server.process.exitCode).toBeNull();
      expect(failures).toEqual([]);
      expect(goodCloses).toEqual([]);
      const want = Array.from({ length: sequence }, (_, i) => `seq ${i + 1}`);
      for (const client of good) expect(await client.received(sequence, 10_000)).toEqual(want);
      await waitFor(
        async () => (await metric(server.url, 'pgws_connections')) === good.length,
        10_000,
        'only the good clients to remain',
      );
      for (const client of good) client.socket.close();
      console.log(`fuzz frames: tried ${count} connections, ${tally.line()}`);
    },
    budget(30_000),
  );

  test('counts a frame over max_message_bytes as too_big in pgws_closes_total', async () => {
    await using t = await startBridge();
    using client = await connect(t.wsUrl(uniqueChannel()));
    client.socket.send('x'.repeat(70_000));
    expect((await within(client.closed, 5000, 'the 1009 close')).code).toBe(1009);
    await waitFor(async () => (await metric(t.url, 'pgws_connections')) === 0, 5000, 'the close to be counted');
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'too_big' })).toBe(1);
  });
});

describe('multiplexed frame fuzzing', () => {
  /** A bridge process for the multiplexed fuzzers, with one channel of each kind. */
  async function muxServer() {
    const channels = {
      schema: uniqueChannel('fz_mux_schema'),
      raw: uniqueChannel('fz_mux_raw'),
      readOnly: uniqueChannel('fz_mux_ro'),
    };
    const toml = [
      // Above the default, so publishes reach validation rather than mostly the rate limit.
      '[server]\npublish_rate = 200',
      `[channels."${channels.schema}"]\nhistory = 20\npublish = true`,
      `[channels."${channels.schema}".schema]\ntype = "object"\nproperties = { id = { type = "integer" }, note = { type = "string" } }`,
      `[channels."${channels.raw}"]\npublish = true`,
      `[channels."${channels.readOnly}"]\n`,
    ].join('\n');
    const server = await spawnServer({ toml, env: { DATABASE_URL: databaseUrl() } });
    return Object.assign(server, { channels });
  }

  /** After a fuzz: the process is alive, logged no handler failure, holds no socket, and serves a fresh one. */
  async function stillServes(server: Awaited<ReturnType<typeof muxServer>>) {
    expect(server.process.exitCode).toBeNull();
    expect(server.lines.filter((line) => line.includes('"level":"error"'))).toEqual([]);
    await waitFor(
      async () => (await metric(server.url, 'pgws_connections')) === 0,
      10_000,
      'every fuzzed socket to go',
    );
    using fresh = await connectMux(server.url);
    await fresh.subscribe(server.channels.schema);
    expect(await fresh.request({ type: 'publish', channel: server.channels.schema, payload: { id: 1 } })).toMatchObject(
      {
        type: 'published',
      },
    );
    expect(await fresh.next('message')).toMatchObject({ channel: server.channels.schema, payload: { id: 1 } });
    expect(await fresh.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  }

  test(
    'random and mutated pgws.v1 frames are each answered once with a well-formed frame, or end in a defined close',
    async () => {
      const rng = rngFor('mux-messages');
      await using server = await muxServer();
      const count = scaled(2000);
      const answerTypes = new Set(['subscribed', 'unsubscribed', 'published', 'pong', 'error']);
      // Sessions are made up front, in order, so a seed replays whatever the interleaving.
      const sessions: { messages: FuzzMessage[]; binary: Uint8Array | undefined }[] = [];
      for (let serial = 0; serial < count; ) {
        const messages: FuzzMessage[] = [];
        for (let i = rng.int(1, 60); i > 0 && serial < count; i--) {
          const message = randomMessage(rng, server.channels, serial++);
          messages.push(message);
          if (message.closes !== undefined) break;
        }
        const last = messages.at(-1);
        const binary = last?.closes === undefined && rng.chance(0.05) ? rng.bytes(rng.int(0, 64)) : undefined;
        sessions.push({ messages, binary });
      }
      const tally = new Tally();
      const failures: string[] = [];
      const show = (text: string) => JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);

      await inParallel(sessions, 4, async ({ messages, binary }, index) => {
        using client = await connectMux(server.url);
        const sentIds = new Set<string>();
        for (const { text } of messages) {
          const id = ownId(text);
          if (id !== undefined) sentIds.add(id);
          client.sendText(text);
        }
        if (binary !== undefined) client.socket.send(binary);
        const closes = messages.at(-1)?.closes ?? (binary === undefined ? undefined : 1003);
        const answerable = messages.filter((m) => m.closes === undefined);
        const answers = () => client.frames.filter((f) => answerTypes.has(f.type));
        try {
          if (closes === undefined) {
            await client.until(
              (f) => f.filter((x) => answerTypes.has(x.type)).length >= answerable.length,
              5000,
              'answers',
            );
            // Anything answered twice shows up before the answer to a last ping.
            expect(await client.request({ type: 'ping', id: 'end' })).toMatchObject({ type: 'pong' });
          } else {
            const { code } = await within(client.closed, 10_000, `the ${closes} close`);
            tally.add(`close ${code}`);
            if (code !== closes) failures.push(`session ${index}: closed with ${code}, expected ${closes}`);
          }
        } catch (error) {
          const missing = answerable.filter(
            (m) => m.echoes !== undefined && !client.frames.some((f) => f.id === m.echoes),
          );
          // What came after an unanswered frame on its channel (an unsubscribe racing its LISTEN, say).
          const context = (m: FuzzMessage) => {
            const channel = JSON.stringify((JSON.parse(m.text) as { channel?: unknown }).channel);
            const later = messages.slice(messages.indexOf(m) + 1).filter((n) => n.text.includes(channel));
            return `${show(m.text)} (then on its channel: ${later.map((n) => show(n.text)).join(', ') || 'nothing'})`;
          };
          failures.push(
            `session ${index}: ${error instanceof Error ? error.message : String(error)}; ${answers().length} answers to ${answerable.length} frames; unanswered: ${missing.map(context).join('; ')}`,
          );
        }
        for (const text of client.texts) {
          const problem = serverFrameProblem(text);
          if (problem !== undefined) failures.push(`session ${index}: ${problem}: ${show(text)}`);
        }
        const got = answers().filter((f) => f.id !== 'end');
        if (closes === undefined && got.length !== answerable.length)
          failures.push(`session ${index}: ${got.length} answers to ${answerable.length} frames`);
        for (const answer of got) {
          tally.add(answer.type === 'error' ? `error ${answer.code}` : answer.type);
          if (answer.id !== undefined && !sentIds.has(JSON.stringify(answer.id)))
            failures.push(`session ${index}: an answer echoes an id no frame carried: ${show(JSON.stringify(answer))}`);
        }
        for (const message of messages) {
          if (message.echoes === undefined) continue;
          const echoed = got.filter((f) => f.id === message.echoes).length;
          if (echoed > 1 || (echoed === 0 && closes === undefined))
            failures.push(`session ${index}: ${echoed} answers echo ${message.echoes}: ${show(message.text)}`);
        }
        tally.add('frames sent', messages.length + (binary === undefined ? 0 : 1));
      });

      expect(failures.slice(0, 20)).toEqual([]);
      await stillServes(server);
      console.log(`fuzz multiplexed frames: ${count} frames in ${sessions.length} sockets, ${tally.line()}`);
    },
    budget(30_000),
  );

  test(
    'random wire frames on multiplexed sockets end in a defined close, and every text the server sends is a well-formed frame',
    async () => {
      const rng = rngFor('mux-wire');
      await using server = await muxServer();
      const host = '127.0.0.1';
      const port = Number(server.url.port);
      const tally = new Tally();
      const failures: string[] = [];
      const count = scaled(1000);
      await inParallel(
        Array.from({ length: count }, (_, index) => index),
        8,
        async (index) => {
          const { script, shape, clientCloses } = randomScript(rng, '/', `${host}:${port}`, {
            'Sec-WebSocket-Protocol': SUBPROTOCOL,
          });
          const result = await exchange(host, port, script, 5000);
          const judged = judge(result, clientCloses);
          // A request on / that is not an upgrade after all (no Connection: Upgrade) gets the console page.
          const consolePage = shape === 'bad handshake' && result.status === 200;
          const outcome = consolePage ? 'http 200 (not an upgrade: the console page)' : judged.outcome;
          tally.add(outcome);
          if (!judged.ok && !consolePage)
            failures.push(
              `#${index} (${shape}): ${outcome}${result.closed ? '' : ', not closed within 5 s after our FIN'}`,
            );
          for (const frame of result.frames.filter((f) => f.opcode === 1)) {
            const problem = serverFrameProblem(frame.payload.toString());
            if (problem !== undefined)
              failures.push(`#${index} (${shape}): ${problem}: ${frame.payload.toString().slice(0, 120)}`);
          }
        },
      );
      expect(failures.slice(0, 20)).toEqual([]);
      await stillServes(server);
      console.log(`fuzz multiplexed wire frames: tried ${count} connections, ${tally.line()}`);
    },
    budget(30_000),
  );
});

/** The id a frame text carries as JSON text, when it parses to an object whose id is a string or a finite number. */
function ownId(text: string): string | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, 'id')) return undefined;
    const id: unknown = Reflect.get(value, 'id');
    return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? JSON.stringify(id) : undefined;
  } catch {
    return undefined;
  }
}

describe('channel name fuzzing', () => {
  test(
    'every upgrade URL gets 101 on exactly the decoded channel or 400, never 500 or a hang',
    async () => {
      const rng = rngFor('paths');
      await using t = await startBridge();
      const host = '127.0.0.1';
      const port = Number(t.url.port);
      const tally = new Tally();
      const failures: string[] = [];
      const count = scaled(600);
      const cases = Array.from({ length: count }, () => randomChannelPath(rng));
      const show = (text: string) => JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
      /** Sends `target` as the request line byte for byte; the answer must be 101 for `name`, else 400. */
      const upgradeRaw = async (target: string, name: string | undefined, what: string) => {
        const result = await exchange(
          host,
          port,
          {
            request: [Buffer.from(upgradeRequest(target, `${host}:${port}`))],
            frames: [],
            cleanClose: true,
            fin: true,
          },
          5000,
        );
        const status = result.status ?? 'no response';
        tally.add(`${what} ${status}`);
        // A request line past the HTTP layer's limit is refused before the bridge sees it (431), which is as good as 400.
        const refusals = target.length > 4096 ? [400, 414, 431] : [400];
        const ok = name === undefined ? refusals.includes(result.status ?? 0) : result.status === 101;
        if (!ok || !result.closed) {
          failures.push(
            `${what} ${show(target)}: expected ${name === undefined ? 400 : `101 for ${JSON.stringify(name)}`}, got ${status}${result.closed ? '' : ' and no close'}`,
          );
        }
      };

      await inParallel(cases, 8, async (path) => {
        let url: URL;
        try {
          url = new URL(`ws://${t.url.host}/${path}`);
        } catch {
          tally.add('not a URL (client-side)');
          return;
        }
        // What a WHATWG client sends: the normalised path and query; the fragment never leaves the client.
        url.hash = '';
        const name = expectedChannel(url.pathname);
        if (name === undefined) return upgradeRaw(`${url.pathname}${url.search}`, name, 'refused');
        let client: TestClient;
        try {
          client = await connect(url.href);
        } catch {
          const { status } = await within(upgradeStatus(url.href), 5000, `the upgrade of ${show(path)}`);
          failures.push(`${show(path)}: expected 101 for channel ${JSON.stringify(name)}, got ${status}`);
          tally.add(`accepted: expected 101, got ${status}`);
          return;
        }
        using _ = client;
        const token = `token ${crypto.randomUUID()}`;
        await t.notify(name, token);
        try {
          await waitFor(() => client.messages.includes(token), 5000, `the NOTIFY on ${JSON.stringify(name)}`);
          tally.add('accepted 101');
        } catch {
          failures.push(`${show(path)}: opened, but a NOTIFY on ${JSON.stringify(name)} did not arrive`);
        }
      });

      // The same paths as raw request targets, unnormalised, as a non-browser client may send them; the
      // server reads them through the URL parser, so the expectation is computed from its pathname.
      const rawCount = scaled(200);
      await inParallel(cases.slice(0, rawCount), 8, async (path) => {
        const target = `/${[...path].map((char) => (/^[\x21-\x7e]$/.test(char) && char !== '#' ? char : encodeURIComponent(char.toWellFormed()))).join('')}`;
        await upgradeRaw(target, expectedChannel(new URL(`http://${host}${target}`).pathname), 'raw target');
      });

      expect(failures).toEqual([]);
      // An empty path is `/`, the multiplexed endpoint: without the subprotocol it is refused for that.
      const refused =
        (await metric(t.url, 'pgws_upgrades_refused_total', { reason: 'bad_name' })) +
        (await metric(t.url, 'pgws_upgrades_refused_total', { reason: 'no_subprotocol' }));
      expect(refused).toBe(tally.get('refused 400') + tally.get('raw target 400'));
      await waitFor(
        async () => (await metric(t.url, 'pgws_connections')) === 0,
        10_000,
        'every fuzzed connection to be gone',
      );
      console.log(`fuzz channel names: tried ${count} URLs + ${rawCount} raw targets, ${tally.line()}`);
    },
    budget(30_000),
  );
});

describe('config fuzzing', () => {
  const FILE = join(import.meta.dir, 'fuzz', 'channels.toml');

  /** What the loaded config must hold of the TOML: every declared channel, and every key of an inline schema table. */
  function lostInLoading(text: string, config: Awaited<ReturnType<typeof parseConfig>>): string | undefined {
    const raw = parseToml(text) as { channels?: Record<string, { schema?: unknown }> };
    const declared = Object.keys(raw.channels ?? {});
    const loaded = [...config.channels.keys()];
    if (declared.length !== loaded.length || declared.some((name) => !config.channels.has(name))) {
      return `declared channels ${JSON.stringify(declared)} but loaded ${JSON.stringify(loaded)}`;
    }
    for (const name of declared) {
      const table = raw.channels?.[name]?.schema;
      const source = config.channels.get(name)?.source;
      if (typeof table !== 'object' || table === null || source?.kind !== 'inline') continue;
      const keys = Object.keys(table);
      if (keys.length !== Object.keys(source.definition).length) {
        return `channels.${name}.schema has keys ${JSON.stringify(keys)} but the loaded schema has ${JSON.stringify(Object.keys(source.definition))}`;
      }
    }
    return undefined;
  }

  test(
    'mutated configs either load completely or fail with a one-line ConfigError that names channels.toml',
    async () => {
      const rng = rngFor('config');
      const base = await Bun.file(join(import.meta.dir, 'fuzz', 'base.toml')).text();
      expect(lostInLoading(base, await parseConfig(base, FILE))).toBeUndefined();
      const tally = new Tally();
      const failures: string[] = [];
      const count = scaled(4000);
      for (let i = 0; i < count; i++) {
        const mutated = mutateConfig(rng, base);
        try {
          const config = await parseConfig(mutated.text, FILE);
          const lost = lostInLoading(mutated.text, config);
          if (lost !== undefined) failures.push(`#${i} (${mutated.how}) loaded but lost something: ${lost}`);
          if (lost !== undefined) tally.add('loaded but lost a declared key');
          tally.add('loaded');
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          const ok =
            error instanceof ConfigError &&
            message.startsWith('channels.toml:') &&
            !message.includes('    at ') &&
            !message.includes('\n');
          const badly = !(error instanceof ConfigError)
            ? `threw ${error instanceof Error ? error.name : typeof error}`
            : !message.startsWith('channels.toml:')
              ? 'no file name'
              : message.includes('    at ')
                ? 'stack trace'
                : 'multi-line message';
          tally.add(
            ok
              ? `refused ${/^channels\.toml:\d+:\d+:/.test(message) ? 'at line:column' : 'at a key path'}`
              : `refused badly (${badly})`,
          );
          if (!ok)
            failures.push(
              `#${i} (${mutated.how}): ${error instanceof Error ? error.name : typeof error}: ${JSON.stringify(message.slice(0, 300))}`,
            );
        }
      }
      console.log(`fuzz configs: tried ${count}, ${tally.line()}, failures ${failures.length}`);
      expect(failures.slice(0, 10)).toEqual([]);
    },
    budget(20_000),
  );

  test(
    'a mutated config the loader refuses makes the process exit 2 with one line on stderr',
    async () => {
      const rng = rngFor('config-process');
      const base = await Bun.file(join(import.meta.dir, 'fuzz', 'base.toml')).text();
      const samples: { text: string; refused: boolean }[] = [];
      while (samples.length < 8) {
        const { text } = mutateConfig(rng, base);
        // Only well-formed refusals: the loader's own faults are the test above's business.
        const outcome = await parseConfig(text, FILE).then(
          () => 'loaded',
          (error: unknown) => (error instanceof Error && !error.message.includes('\n') ? 'refused' : 'bad'),
        );
        if (outcome === 'bad') continue;
        const refused = outcome === 'refused';
        if (samples.filter((sample) => sample.refused === refused).length < (refused ? 6 : 2))
          samples.push({ text, refused });
      }
      const runs = await Promise.all(
        samples.map(async ({ text, refused }) => {
          const dir = mkdtempSync(join(tmpdir(), 'pgws-fuzz-config-'));
          writeFileSync(join(dir, 'channels.toml'), text);
          const event = JSON.stringify(join(import.meta.dir, 'fuzz', 'event.ts'));
          writeFileSync(join(dir, 'event.ts'), `export * from ${event};\nexport { default } from ${event};\n`);
          const env = { ...process.env };
          for (const name of ['PORT', 'HOST', 'DATABASE_URL']) delete env[name];
          const child = Bun.spawn(
            ['bun', join(import.meta.dir, '..', 'src', 'main.ts'), '--check', '--config', 'channels.toml'],
            { cwd: dir, env, stdout: 'pipe', stderr: 'pipe' },
          );
          const [stderr, code] = await within(
            Promise.all([new Response(child.stderr).text(), child.exited]),
            15_000,
            'bun src/main.ts --check',
          );
          rmSync(dir, { recursive: true, force: true });
          return { refused, stderr, code };
        }),
      );
      for (const run of runs) {
        if (run.refused)
          expect({ code: run.code, lines: run.stderr.split('\n').length, start: run.stderr.slice(0, 14) }).toEqual({
            code: 2,
            lines: 2,
            start: 'channels.toml:',
          });
        else expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      }
      console.log(
        `fuzz configs through the process: ${runs.length} runs, exit codes ${runs.map((r) => r.code).join(' ')}`,
      );
    },
    budget(20_000),
  );

  test.each(['constructor', '__proto__', 'prototype'])(
    'declares a channel named %s instead of silently dropping it',
    async (name) => {
      const text = `[server]\nunknown_channels = "reject"\n\n[channels.${name}]\ndescription = "declared"\n`;
      const config = await parseConfig(text, FILE);
      expect([...config.channels.keys()]).toEqual([name]);
    },
  );

  test.each(['constructor', '__proto__', 'prototype'])(
    'refuses an unknown schema keyword named %s like any other',
    async (keyword) => {
      const text = `[channels.orders.schema]\ntype = "object"\n${keyword} = 1\n`;
      await expect(parseConfig(text, FILE)).rejects.toThrow(
        `channels.toml: channels.orders.schema: unknown keyword "${keyword}"`,
      );
    },
  );

  test.each([
    ['an unknown schema keyword', '[channels.orders.schema]\n"fro\\nbnicate" = 1\n'],
    ['a string where a number belongs', '[server]\nport = "80\\n81"\n'],
    ['an unknown mode', '[server]\nunknown_channels = "raw\\nreject"\n'],
  ])('reports %s with a newline in it on one line', async (_, text) => {
    const error = await parseConfig(text, FILE).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toStartWith('channels.toml: ');
    expect((error as Error).message).not.toContain('\n');
  });
});
