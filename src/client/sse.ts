/**
 * Reading a `text/event-stream` response as the stream socket needs it (WHATWG "Server-sent events" §9.2.6, the
 * fields this server writes): each event handed on as the pgws.v1 frame it re-frames (`event:` is the `type`,
 * `data:` the rest), and the close code a socket would have had, from the server's last comment
 * (`: closed CODE label: text`). Pure, apart from reading the body it is given.
 */

/** How the stream ended, as its last comment named it. */
export interface LastWords {
  readonly code: number;
  readonly text: string;
}

/**
 * Reads `body` to its end, calling `onChunk` as bytes arrive and `onFrame` for each event; returns the close
 * the last comment names, or undefined. Stops (undefined) as soon as `going()` is false.
 */
export async function readEvents(
  body: ReadableStream<Uint8Array>,
  going: () => boolean,
  onChunk: () => void,
  onFrame: (frame: Record<string, unknown>) => void,
): Promise<LastWords | undefined> {
  let last: LastWords | undefined;
  const decoder = new TextDecoder();
  let pending = '';
  let event = '';
  let data = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    if (!going()) return undefined;
    onChunk();
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split(/\r\n|\r|\n/);
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        if (data !== '') onFrame({ type: event || 'message', ...(JSON.parse(data) as Record<string, unknown>) });
        event = '';
        data = '';
      } else if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data += line.slice(5).trimStart();
      else if (line.startsWith(': closed ')) {
        const [, code, text] = /^: closed (\d+) \S+: (.*)$/.exec(line) ?? [];
        if (code !== undefined) last = { code: Number(code), text: text ?? '' };
      }
    }
  }
  return last;
}

/** The `exp` of a JWT, read without checking it: only to schedule a refresh, as a `ready` frame would say. */
export function expiresOf(token: string | undefined): number | null {
  try {
    const part = (token ?? '').split('.')[1] ?? '';
    const claims = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp : null;
  } catch {
    return null;
  }
}
