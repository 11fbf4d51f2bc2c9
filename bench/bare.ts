/**
 * The second baseline: the barest Bun bridge (`Bun.serve` + `server.publish` on a postgres.js
 * `sql.listen`). No schemas, no limits, no metrics, no reconnect handling: the yardstick every
 * figure of ours is divided by. Env: DATABASE_URL, PORT, HOST, and PROCESSES (default 1): that many
 * copies on one port (SO_REUSEPORT), each with its own LISTEN, the yardstick for our workers.
 */
import postgres from 'postgres';

const copy = process.env['BARE_COPY'] === '1';
const processes = copy ? 1 : Number(process.env['PROCESSES'] ?? 1);
const copies = Array.from({ length: processes - 1 }, () =>
  Bun.spawn([process.execPath, import.meta.path], {
    env: { ...process.env, BARE_COPY: '1' },
    stdio: ['ignore', 'inherit', 'inherit'],
  }),
);
const sql = postgres(process.env['DATABASE_URL'] ?? '', { onnotice: () => {} });
const listening = new Map<string, Promise<unknown>>();

const server = Bun.serve({
  hostname: process.env['HOST'] || '0.0.0.0',
  port: Number(process.env['PORT'] ?? 8080),
  reusePort: copy || processes > 1,
  async fetch(request, server) {
    const channel = decodeURIComponent(new URL(request.url).pathname.slice(1));
    if (channel === 'healthz') return new Response('ok\n');
    let ready = listening.get(channel);
    if (ready === undefined) {
      ready = sql.listen(channel, (payload) => server.publish(channel, payload));
      listening.set(channel, ready);
    }
    await ready;
    return server.upgrade(request, { data: { channel } })
      ? undefined
      : new Response('upgrade failed\n', { status: 400 });
  },
  websocket: {
    data: {} as { channel: string },
    open(ws) {
      ws.subscribe(ws.data.channel);
    },
    message: () => {},
  },
});

process.once('SIGTERM', async () => {
  for (const child of copies) child.kill('SIGTERM');
  await server.stop(true);
  await Promise.all([sql.end({ timeout: 1 }), ...copies.map((child) => child.exited)]);
  process.exit(0);
});
