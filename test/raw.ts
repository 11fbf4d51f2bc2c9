/**
 * A raw TCP WebSocket client for the faults a browser cannot cause: one that completes the handshake
 * and then never reads, never answers pings, or sends hand-made frames.
 */
import { type Socket, connect as tcpConnect } from 'node:net';
import { within } from './wait.ts';

/** A server frame as read off the wire. */
export interface RawFrame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** A handshaken raw socket. Reading is paused until `readAll` is called. */
export interface RawClient extends Disposable {
  readonly socket: Socket;
  /** The server's handshake response: status line and headers, as sent. */
  readonly response: string;
  /** Resolves once the server has closed the TCP connection. */
  readonly ended: Promise<void>;
  /** Resumes reading and resolves with every frame once the server closes the connection. */
  readAll(ms?: number): Promise<RawFrame[]>;
  /** Sends a masked client frame (RFC 6455 §5.3: clients must mask). */
  sendFrame(opcode: number, payload: Uint8Array): void;
}

/** Opens a TCP connection, performs the upgrade on `path` (with `headers`, e.g. a subprotocol), and pauses reading. */
export async function rawClient(
  host: string,
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<RawClient> {
  const socket = tcpConnect(port, host);
  await within(new Promise((resolve) => socket.once('connect', resolve)), 5000, 'TCP connect');
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('') +
      '\r\n',
  );
  let buffered = Buffer.alloc(0);
  let response = '';
  await within(
    new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        socket.pause();
        response = buffered.subarray(0, end).toString('latin1');
        buffered = buffered.subarray(end + 4);
        resolve();
      };
      socket.on('data', onData);
    }),
    5000,
    'the upgrade response',
  );
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    response,
    ended,
    async readAll(ms = 20_000) {
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
      });
      socket.resume();
      await within(ended, ms, 'the server to close the raw socket');
      return parseFrames(buffered);
    },
    sendFrame(opcode, payload) {
      const mask = crypto.getRandomValues(new Uint8Array(4));
      const length = payload.length;
      const header =
        length < 126
          ? Buffer.from([0x80 | opcode, 0x80 | length])
          : Buffer.from([0x80 | opcode, 0x80 | 126, length >> 8, length & 0xff]);
      const masked = Buffer.from(payload.map((byte, i) => byte ^ (mask[i % 4] ?? 0)));
      socket.write(Buffer.concat([header, mask, masked]));
    },
    [Symbol.dispose]() {
      socket.destroy();
    },
  };
}

/** Splits unmasked server frames (RFC 6455 §5.2). */
export function parseFrames(data: Buffer): RawFrame[] {
  const frames: RawFrame[] = [];
  let at = 0;
  while (at + 2 <= data.length) {
    const opcode = (data[at] ?? 0) & 0x0f;
    let length = (data[at + 1] ?? 0) & 0x7f;
    let offset = at + 2;
    if (length === 126) {
      length = data.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      length = Number(data.readBigUInt64BE(offset));
      offset += 8;
    }
    if (offset + length > data.length) break;
    frames.push({ opcode, payload: data.subarray(offset, offset + length) });
    at = offset + length;
  }
  return frames;
}

/** The close code of the last close frame (opcode 8), if any. */
export function closeCode(frames: readonly RawFrame[]): number | undefined {
  const close = frames.findLast((frame) => frame.opcode === 8);
  return close === undefined || close.payload.length < 2 ? undefined : close.payload.readUInt16BE(0);
}
