/**
 * The first baseline: a plain postgres.js `sql.listen`, no WebSocket anywhere. How fast notifications
 * come back to it is the database's ceiling, the most any bridge could relay to one client.
 * Used by the generator (bench/clients.ts) as the `pg` kind of client.
 */
import postgres from 'postgres';

/** One raw LISTEN connection. */
export interface RawListener {
  close(): Promise<void>;
}

/** Opens its own connection and LISTENs; resolves once the LISTEN is in place. */
export async function openRawListener(
  url: string,
  channel: string,
  onPayload: (payload: string) => void,
): Promise<RawListener> {
  const sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    fetch_types: false,
    connection: { application_name: 'pgws-bench-raw' },
  });
  try {
    await sql.listen(channel, onPayload);
  } catch (error) {
    await sql.end({ timeout: 1 });
    throw error;
  }
  return { close: () => sql.end({ timeout: 1 }) };
}
