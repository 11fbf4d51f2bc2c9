/**
 * The scene of test/durable-stress.test.ts: writers that commit or roll back `pgws.send` transactions and
 * record which, a gate the test pauses them with, and clients ("followers") that drop at random moments and
 * resume with `since` on a random live instance, checking every message as it arrives. Everything waits on
 * one change signal (`watch`), notified at each commit, message and gate change, never on a clock.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import postgres from 'postgres';
import { type Rng, rngFor, Tally } from './fuzz/random.ts';
import { connectMux, type Frame, type MuxClient } from './mux.ts';
import type { ServerProcess } from './process.ts';
import { within } from './wait.ts';

/** A server process under a name the report uses (`A`, `B`, `B'`). */
export interface Instance {
  readonly name: string;
  readonly server: ServerProcess;
}

/** One client's record: the payload of each seq it received (index seq - 1) and what it saw go wrong. */
export interface Follower {
  readonly name: string;
  readonly seen: string[];
  readonly problems: string[];
  position: { readonly epoch: string; seq: number };
  /** The instance it is on now, or `away`. */
  on: string;
}

/** What the writers committed (by seq, as `pgws.send` returned it) and what they rolled back. */
export interface Ledger {
  readonly committed: Map<number, string>;
  readonly rolledBack: Set<string>;
}

/** Lets writers start transactions: all of them, none, or a counted burst. */
export interface Gate {
  /** Lets no new transaction start; resolves once those under way have ended. */
  pause(): Promise<void>;
  /** Lets `count` more transactions start; resolves once they have ended. */
  allow(count: number): Promise<void>;
  resume(): void;
}

interface Waiter {
  check(): boolean;
  resolve(): void;
}

/** Options of {@link createScene}. */
export interface SceneOptions {
  channel: string;
  /** The database writers connect to. */
  url: string;
  seed: number;
}

const ROLLBACK = new Error('rolled back on purpose');

/** Creates the scene; nothing runs until `follow` and `write`. */
export function createScene(options: SceneOptions) {
  const { channel, seed } = options;
  // The instances clients may resume on now; `retire` and `enlist` change it.
  const live: Instance[] = [];
  const ledger: Ledger = { committed: new Map(), rolledBack: new Set() };
  const tally = new Tally();
  const waiters = new Set<Waiter>();
  const notify = () => {
    for (const waiter of waiters) {
      if (!waiter.check()) continue;
      waiters.delete(waiter);
      waiter.resolve();
    }
  };
  const until = (check: () => boolean, ms: number, what: string) => {
    const done = Promise.withResolvers<void>();
    const waiter = { check, resolve: done.resolve };
    if (check()) return Promise.resolve();
    waiters.add(waiter);
    return within(done.promise, ms, what).finally(() => waiters.delete(waiter));
  };
  let finished = false;
  let allowance = Number.POSITIVE_INFINITY;
  let inFlight = 0;
  let writersLeft = 0;
  const flowing = () => allowance > 0 && writersLeft > 0;
  const followers: Follower[] = [];
  const loops: Promise<void>[] = [];
  const sockets = new Set<MuxClient>();
  let writing: Promise<unknown> = Promise.resolve();

  /** Waits for a ticket; false once the scene is over. The check takes the ticket, so two writers never share one. */
  const enter = async () => {
    await until(
      () => {
        if (finished) return true;
        if (allowance <= 0) return false;
        allowance -= 1;
        inFlight += 1;
        return true;
      },
      120_000,
      'the gate to open',
    );
    return !finished;
  };

  async function writer(index: number, count: number, rollbacks: number): Promise<void> {
    const rng = rngFor(`writer ${index}`, seed);
    const indexes = Array.from({ length: count }, (_, i) => i + 1);
    const rolled = new Set<number>();
    while (rolled.size < rollbacks) rolled.add(rng.pick(indexes));
    // Commits need not wait for the disk: what is checked is their order and visibility, which this does not
    // change, and on a database that flushes every commit it halves the run.
    const sql = postgres(options.url, { max: 1, onnotice: () => {}, connection: { synchronous_commit: 'off' } });
    try {
      for (const n of indexes) {
        if (!(await enter())) return;
        const payload = `w${index}:${n}`;
        try {
          const seq = await sql.begin(async (tx) => {
            const [row] = await tx`SELECT pgws.send(${channel}, ${payload}) AS seq`;
            if (rolled.has(n)) throw ROLLBACK;
            return Number(row?.['seq']);
          });
          ledger.committed.set(seq, payload);
        } catch (error) {
          if (error !== ROLLBACK) throw error;
          ledger.rolledBack.add(payload);
        } finally {
          inFlight -= 1;
          notify();
        }
      }
    } finally {
      writersLeft -= 1;
      notify();
      await sql.end({ timeout: 5 });
    }
  }

  const problem = (follower: Follower, text: string) => follower.problems.push(text);

  /** Checks one frame after the subscription's answer; true for a message of the channel. */
  function take(follower: Follower, frame: Frame, on: string): boolean {
    if (frame.type === 'gap' || frame.type === 'error') problem(follower, `${on}: ${JSON.stringify(frame)}`);
    if (frame.type !== 'message' || frame.channel !== channel) return false;
    const seq = Number(frame.seq);
    if (seq !== follower.position.seq + 1) problem(follower, `${on}: seq ${seq} after ${follower.position.seq}`);
    if (follower.seen[seq - 1] !== undefined) problem(follower, `${on}: seq ${seq} twice`);
    follower.seen[seq - 1] = String(frame.payload);
    follower.position.seq = Math.max(follower.position.seq, seq);
    return true;
  }

  /** Reads messages until `count` have arrived, the socket closed or the scene is over. */
  async function consume(follower: Follower, client: MuxClient, from: number, count: number, on: string) {
    let read = from;
    let got = 0;
    sockets.add(client);
    follower.on = on;
    const check = () => {
      for (; read < client.frames.length; read++) if (take(follower, client.frames[read] as Frame, on)) got += 1;
      notify();
      return got >= count || finished;
    };
    await client.until(check, 120_000, `${count} messages`).catch(() => {});
    sockets.delete(client);
    client.socket.close();
    follower.on = 'away';
  }

  /** A resume on a random live instance; undefined when it should be tried again. */
  async function resume(follower: Follower, rng: Rng) {
    const instance = rng.pick(live);
    const client = await connectMux(instance.server.url, { ms: 10_000 }).catch(() => undefined);
    if (client === undefined) return void tally.add('connects refused');
    const since = { ...follower.position };
    const behind = ledger.committed.size - since.seq;
    const answer = await client.request({ type: 'subscribe', channel, since }, 15_000).catch(() => undefined);
    if (answer === undefined || (answer.type === 'error' && answer.code === 'unavailable')) {
      client.socket.close();
      return void tally.add('resumes to retry');
    }
    if (answer.type !== 'subscribed' || answer.recovered !== true || answer.seq !== since.seq)
      problem(follower, `resume on ${instance.name} after ${since.seq} answered ${JSON.stringify(answer)}`);
    tally.add(`resumes on ${instance.name}`);
    if (behind > 1000) tally.add('resumes over 1000 behind');
    return { client, from: client.frames.indexOf(answer) + 1, on: instance.name };
  }

  async function run(follower: Follower, rng: Rng, first: { client: MuxClient; from: number; on: string }) {
    let session: typeof first | undefined = first;
    while (!finished) {
      session ??= await resume(follower, rng);
      // A client's backoff before it tries again (an instance stopping, or not LISTENing yet).
      if (session === undefined) {
        await Bun.sleep(rng.int(20, 100));
        continue;
      }
      await consume(follower, session.client, session.from, rng.int(20, 600), session.on);
      session = undefined;
      // Now and then away while more than the instances' cache (1,000) is written: a resume from the table.
      if (!finished && rng.chance(0.3)) {
        const target = ledger.committed.size + rng.int(1000, 1500);
        await until(() => finished || !flowing() || ledger.committed.size >= target, 120_000, 'an absence to end');
        tally.add('long absences');
      }
    }
  }

  return {
    ledger,
    tally,
    gate: {
      pause() {
        allowance = 0;
        return until(() => inFlight === 0, 30_000, 'transactions under way to end');
      },
      allow(count) {
        allowance = count;
        notify();
        return until(() => (allowance === 0 || writersLeft === 0) && inFlight === 0, 30_000, `${count} transactions`);
      },
      resume() {
        allowance = Number.POSITIVE_INFINITY;
        notify();
      },
    } satisfies Gate,
    /** Subscribes `count` clients, spread over the live instances, from the head (seq 0), and starts them. */
    async follow(count: number, epoch: string): Promise<Follower[]> {
      for (let i = 0; i < count; i++) {
        const instance = live[i % live.length] as Instance;
        const follower: Follower = {
          name: `client ${i}`,
          seen: [],
          problems: [],
          position: { epoch, seq: 0 },
          on: instance.name,
        };
        const client = await connectMux(instance.server.url, { ms: 10_000 });
        const answer = await client.subscribe(channel, {}, 15_000);
        if (answer.epoch !== epoch || answer.seq !== 0) problem(follower, `subscribed ${JSON.stringify(answer)}`);
        followers.push(follower);
        const first = { client, from: client.frames.indexOf(answer) + 1, on: instance.name };
        loops.push(run(follower, rngFor(follower.name, seed), first));
      }
      return followers;
    },
    /** Starts the writers; resolves once all have written (rejects if one failed). */
    write(writers: number, count: number, rollbacks: number): Promise<unknown> {
      writersLeft = writers;
      writing = Promise.all(Array.from({ length: writers }, (_, i) => writer(i, count, rollbacks)));
      writing.catch(() => {});
      return writing;
    },
    /** Resolves once `count` transactions have committed. */
    committed: (count: number) => until(() => ledger.committed.size >= count, 60_000, `${count} commits`),
    /** The seq of the last commit; exact only while no transaction is under way. */
    head: () => ledger.committed.size,
    /** Resolves once every client has received up to `seq`; the failure says where each one is. */
    reach: (seq: number, ms: number, what: string) =>
      until(() => followers.every((follower) => follower.position.seq >= seq), ms, what).catch((error: Error) => {
        const where = followers.map((follower) => `${follower.name} at ${follower.position.seq} on ${follower.on}`);
        throw new Error(`${error.message} (${where.join(', ')})`);
      }),
    retire(instance: Instance) {
      live.splice(live.indexOf(instance), 1);
    },
    enlist(instance: Instance) {
      live.push(instance);
    },
    /** Ends every client and writer. */
    async stop() {
      finished = true;
      notify();
      for (const client of sockets) client.socket.close();
      await within(Promise.allSettled([...loops, writing]), 15_000, 'the clients and writers to stop');
    },
  };
}

/**
 * The pids of the LISTEN backends of server process `pid`: the sessions named 'pg-notify-ws' whose last query
 * was a LISTEN and whose client port is one of that process's TCP connections to the database's port. Other
 * bridges on the same database (another instance, another test run) have other ports.
 */
export async function listenBackends(sql: postgres.Sql, pid: number, url: string): Promise<number[]> {
  const ports = connectionPorts(pid, Number(new URL(url).port || 5432));
  const rows = await sql`SELECT pid FROM pg_stat_activity WHERE application_name = 'pg-notify-ws'
    AND query ILIKE 'LISTEN%' AND client_port = ANY(${ports}::int[])`;
  return rows.map((row) => Number(row['pid']));
}

/** The local ports of process `pid`'s TCP connections to `remotePort`, from /proc (Linux). */
function connectionPorts(pid: number, remotePort: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {}
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    // sl local_address rem_address st ... inode: addresses are hex IP:port.
    for (const line of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/);
      const port = (address: string | undefined) => Number.parseInt(address?.split(':').at(-1) ?? '', 16);
      if (inodes.has(columns[9] ?? '') && port(columns[2]) === remotePort) ports.push(port(columns[1]));
    }
  }
  return ports;
}
