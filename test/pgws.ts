/**
 * Test helpers for pgws.notify: installing it (the real script, idempotent and safe while other suites
 * run on the same database), a database of a test's own (for what must not touch the shared one: a
 * database without pgws, a short TTL that sweeps everything), and a multiplexed WebSocket client.
 */
import postgres from 'postgres';
import { INSTALL_SQL } from '../src/db/script.ts';
import { databaseUrl, within } from './harness.ts';

/** Runs the install script on `url` as one multi-statement query, as a migration tool would. */
export async function installPgws(url = databaseUrl()): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(INSTALL_SQL).simple();
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** A fresh database on the test server, dropped (with its connections) on dispose. */
export interface ScratchDatabase extends AsyncDisposable {
  readonly url: string;
  readonly sql: postgres.Sql;
}

/** Creates a database of the test's own on the suite's server. */
export async function scratchDatabase(): Promise<ScratchDatabase> {
  const name = `pgws_scratch_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  const url = new URL(databaseUrl());
  url.pathname = `/${name}`;
  const sql = postgres(url.href, { max: 2, onnotice: () => {} });
  return {
    url: url.href,
    sql,
    async [Symbol.asyncDispose]() {
      await sql.end({ timeout: 1 });
      // PG 13+: FORCE ends whatever a stopped bridge may have left connected.
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end({ timeout: 1 });
    },
  };
}

/** A frame of the multiplexed protocol, as parsed JSON. */
export type Frame = Record<string, unknown> & { type: string };

/** A multiplexed (`pgws.v1`) client: `next(type)` resolves with the next unread frame of that type (or types). */
export interface MuxClient extends Disposable {
  readonly frames: Frame[];
  send(frame: object): void;
  next(type: string | readonly string[], ms?: number): Promise<Frame>;
  /** Subscribes and resolves with the `subscribed` answer. */
  subscribe(channel: string, extra?: object): Promise<Frame>;
}

/** Opens a multiplexed socket on `ws://host/` and waits for `ready`. */
export async function connectMux(host: string): Promise<MuxClient> {
  const socket = new WebSocket(`ws://${host}/`, 'pgws.v1');
  const frames: Frame[] = [];
  const consumed = new Set<number>();
  let wake = Promise.withResolvers<void>();
  socket.onmessage = (event) => {
    frames.push(JSON.parse(String(event.data)));
    wake.resolve();
    wake = Promise.withResolvers<void>();
  };
  await within(
    new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error('the multiplexed socket failed to open'));
    }),
    5000,
    'the multiplexed socket to open',
  );
  const next = async (type: string | readonly string[], ms = 10_000): Promise<Frame> => {
    const types: readonly string[] = typeof type === 'string' ? [type] : type;
    const deadline = Date.now() + ms;
    for (;;) {
      const index = frames.findIndex((frame, i) => !consumed.has(i) && types.includes(frame.type));
      if (index >= 0) {
        consumed.add(index);
        return frames[index] as Frame;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for a ${types.join('/')} frame`);
      await within(wake.promise, left, `a ${types.join('/')} frame (have ${frames.length} frames)`);
    }
  };
  const client: MuxClient = {
    frames,
    send: (frame) => socket.send(JSON.stringify(frame)),
    next,
    async subscribe(channel, extra = {}) {
      client.send({ type: 'subscribe', channel, ...extra });
      return next('subscribed');
    },
    [Symbol.dispose]: () => socket.close(),
  };
  await next('ready');
  return client;
}
