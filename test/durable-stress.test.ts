/**
 * The stress test of durable channels (docs/PROTOCOL.md "Durable channels: positions owned by the database"):
 * two instances as real processes on one durable channel; 50 writers, each committing 100 `pgws.send`
 * transactions of which a random tenth roll back; midway one instance's LISTEN backend is killed and the other
 * instance is restarted; clients drop at random moments and resume with `since` on a random instance. Every
 * client must see every committed message exactly once, in seq order, and none of the rolled-back ones.
 *
 * The seed fixes who rolls back and when clients drop (the interleaving stays the machine's): a failure is
 * replayed with `STRESS_SEED=<seed> bun test test/durable-stress.test.ts`.
 */
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { databaseUrl, uniqueChannel, waitFor } from './harness.ts';
import { installPgws } from './pgws.ts';
import { spawnServer } from './process.ts';
import { createScene, type Instance, listenBackends } from './stress.ts';

setDefaultTimeout(60_000);

beforeAll(() => installPgws());

const SEED = Number(process.env['STRESS_SEED'] ?? crypto.getRandomValues(new Uint32Array(1))[0]) >>> 0;
const WRITERS = 50;
const PER_WRITER = 100;
const ROLLBACKS_PER_WRITER = 10;
const FOLLOWERS = 20;
// The killed LISTEN connection stays down this long (the first retry waits exactly reconnect_min_ms): the
// burst written meanwhile has to be caught up from the table, since nothing wakes the instance after it.
const DOWN_MS = 2000;

test('every client sees every committed message once and in order across a killed LISTEN, a restart and resumes on random instances', async () => {
  console.log(`durable stress: seed ${SEED} (replay with STRESS_SEED=${SEED})`);
  const started = performance.now();
  const channel = uniqueChannel('stress');
  const toml = `[database]\nreconnect_min_ms = ${DOWN_MS}\n[channels."${channel}"]\ndurable = true\nretain = 100000\n`;
  const instances: Instance[] = [];
  const spawn = async (name: string): Promise<Instance> => {
    const instance = { name, server: await spawnServer({ toml, env: { DATABASE_URL: databaseUrl() } }) };
    instances.push(instance);
    return instance;
  };
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  const scene = createScene({ channel, url: databaseUrl(), seed: SEED });
  try {
    const [a, b] = [await spawn('A'), await spawn('B')];
    scene.enlist(a);
    scene.enlist(b);
    const [{ epoch = '' } = {}] = await sql`SELECT epoch FROM pgws.streams WHERE channel = ${channel}`;
    const followers = await scene.follow(FOLLOWERS, String(epoch));
    const writing = scene.write(WRITERS, PER_WRITER, ROLLBACKS_PER_WRITER);

    // A lost LISTEN connection, then a lull: what was committed while it was down reaches A's clients only
    // through its catch-up, since no later wake-up would read it for them.
    await scene.committed(WRITERS * PER_WRITER * 0.3);
    await scene.gate.pause();
    const killed = await sql`SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
      WHERE pid = ANY(${await listenBackends(sql, a.server.process.pid, databaseUrl())}::int[])`;
    expect(killed.map((row) => row['done'])).toEqual([true]);
    await waitFor(async () => (await database(a)) === 'down', 10_000, "A to notice its LISTEN connection's loss");
    await scene.gate.allow(100);
    // Still down after the burst (DOWN_MS leaves ample room): no wake-up after A's reconnect reads the burst.
    expect({ afterTheBurst: await database(a) }).toEqual({ afterTheBurst: 'down' });
    const lull = scene.head();
    await waitFor(async () => (await database(a)) === 'up', 10_000, 'A to LISTEN again');
    await scene.reach(lull, 20_000, `every client to reach seq ${lull}, committed while A's LISTEN was down`);
    scene.gate.resume();

    // B goes away (its clients resume elsewhere) and comes back as a new process on a new port.
    await scene.committed(WRITERS * PER_WRITER * 0.6);
    scene.retire(b);
    expect(await b.server.signal('SIGTERM')).toBe(0);
    scene.enlist(await spawn("B'"));

    await writing;
    const total = scene.head();
    await scene.reach(total, 30_000, `every client to reach seq ${total}`);
    await scene.stop();

    const ledger = scene.ledger;
    expect([ledger.committed.size, ledger.rolledBack.size]).toEqual([
      WRITERS * (PER_WRITER - ROLLBACKS_PER_WRITER),
      WRITERS * ROLLBACKS_PER_WRITER,
    ]);
    // The database numbered the commits 1..N with no hole where transactions rolled back.
    const expected = Array.from(
      { length: total },
      (_, i) => ledger.committed.get(i + 1) ?? `(no commit of seq ${i + 1})`,
    );
    const rows = await sql`SELECT seq, payload FROM pgws.messages WHERE channel = ${channel} ORDER BY seq`;
    expect(rows.map((row) => row['payload'])).toEqual(expected);
    for (const follower of followers) {
      expect({ client: follower.name, problems: follower.problems.slice(0, 5) }).toEqual({
        client: follower.name,
        problems: [],
      });
      expect(follower.seen).toEqual(expected);
      expect(follower.seen.some((payload) => ledger.rolledBack.has(payload))).toBe(false);
    }
    const tally = scene.tally;
    console.log(
      `durable stress: ${total} committed, ${ledger.rolledBack.size} rolled back, ${FOLLOWERS} clients, ` +
        `${tally.line()}; ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    await scene.stop();
    await Promise.all(instances.map((instance) => instance.server[Symbol.asyncDispose]()));
    await sql`DELETE FROM pgws.messages WHERE channel = ${channel}`;
    await sql`DELETE FROM pgws.streams WHERE channel = ${channel}`;
    await sql.end();
  }
}, 120_000);

/** The state of an instance's LISTEN connection, as its /readyz reports it. */
async function database(instance: Instance): Promise<string> {
  const body = (await (await fetch(new URL('/readyz', instance.server.url))).json()) as { database: string };
  return body.database;
}
