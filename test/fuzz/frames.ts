/**
 * Hand-made WebSocket traffic for the frame fuzzer: any header bit, opcode, length encoding (including
 * lengths that lie) and masking, written byte-exact over a raw TCP socket, plus the outcome as the client
 * sees it: the HTTP status, the server's frames, its close code, and whether TCP was closed.
 */
import { connect as tcpConnect } from 'node:net';
import { parseFrames, type RawFrame } from '../raw.ts';
import { within } from '../wait.ts';
import type { Rng } from './random.ts';

/** One client frame, described field by field (RFC 6455 §5.2) so any of them can be wrong. */
export interface FrameSpec {
  readonly fin: boolean;
  /** RSV1..RSV3 as a 3-bit number; anything but 0 is a protocol error without an extension. */
  readonly rsv: number;
  readonly opcode: number;
  readonly masked: boolean;
  readonly payload: Uint8Array;
  /** Force the 16- or 64-bit length form (non-minimal encodings are legal but unusual). */
  readonly lengthForm?: 7 | 16 | 64;
  /** A declared length other than the payload's: the frame lies about its size. */
  readonly declaredLength?: number;
}

/** Encodes a frame exactly as described, masking with a fixed key so runs replay byte for byte. */
export function encodeFrame(spec: FrameSpec, maskKey = new Uint8Array([0x37, 0xfa, 0x21, 0x3d])): Uint8Array {
  const length = spec.declaredLength ?? spec.payload.length;
  const form = spec.lengthForm ?? (length < 126 ? 7 : length < 65536 ? 16 : 64);
  const header: number[] = [(spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0f)];
  const maskBit = spec.masked ? 0x80 : 0;
  // A forced 7-bit form cannot carry more than 125: the length wraps, as a buggy client's would.
  if (form === 7) header.push(maskBit | (length & 0x7f));
  else if (form === 16) header.push(maskBit | 126, (length >> 8) & 0xff, length & 0xff);
  else {
    header.push(maskBit | 127);
    const big = BigInt(length);
    for (let shift = 56n; shift >= 0n; shift -= 8n) header.push(Number((big >> shift) & 0xffn));
  }
  const body = spec.masked ? spec.payload.map((byte, i) => byte ^ (maskKey[i % 4] ?? 0)) : spec.payload;
  return Buffer.concat([Buffer.from(header), spec.masked ? maskKey : new Uint8Array(0), body]);
}

/** A close frame payload: a 2-byte code and a reason (RFC 6455 §5.5.1). */
export function closePayload(code: number, reason: Uint8Array = new Uint8Array(0)): Uint8Array {
  return Buffer.concat([Buffer.from([(code >> 8) & 0xff, code & 0xff]), reason]);
}

/** The client's clean goodbye: a masked close 1000. */
export const CLEAN_CLOSE = encodeFrame({ fin: true, rsv: 0, opcode: 8, masked: true, payload: closePayload(1000) });

/** A well-formed upgrade request for `path`, with optional header lines replaced or added. */
export function upgradeRequest(path: string, host: string, headers: Record<string, string | undefined> = {}): string {
  const base: Record<string, string | undefined> = {
    Host: host,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    ...headers,
  };
  const lines = Object.entries(base)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}: ${value}`);
  return `GET ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

/** What one raw connection came to. */
export interface Exchange {
  /** The HTTP status line's code, or undefined when the server sent no response head. */
  readonly status: number | undefined;
  /** Server frames after a 101. */
  readonly frames: RawFrame[];
  /** The code of the server's close frame; `undefined` if it sent none (or an empty one). */
  readonly closeCode: number | undefined;
  /** The server closed the TCP connection within the deadline. */
  readonly closed: boolean;
  readonly response: Buffer;
}

/** What to write: `request` at once (garbage, a handshake, even frames pipelined behind it), `frames` after a 101. */
export interface Script {
  readonly request: readonly Uint8Array[];
  readonly frames: readonly Uint8Array[];
  /** Follow the frames with a clean close 1000, and the exchange with a TCP FIN. */
  readonly cleanClose: boolean;
  readonly fin: boolean;
}

/**
 * Runs one script over a fresh TCP connection, as a real client would: frames only after the 101
 * (RFC 6455 §4.1). Reads until the server closes the connection or `ms` pass; never throws for anything
 * the server does.
 */
export async function exchange(host: string, port: number, script: Script, ms = 3000): Promise<Exchange> {
  const socket = tcpConnect(port, host);
  socket.setNoDelay(true);
  const received: Buffer[] = [];
  const head = Promise.withResolvers<void>();
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk);
    if (Buffer.concat(received).includes('\r\n\r\n')) head.resolve();
  });
  socket.on('error', () => {});
  const closeEvent = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  // Never throws: a connection the server still holds after `ms` is an outcome like any other.
  const closed = within(closeEvent, ms, 'the server to close the connection').then(
    () => true,
    () => false,
  );
  const connected = await Promise.race([
    new Promise<boolean>((resolve) => socket.once('connect', () => resolve(true))),
    closed.then(() => false),
  ]);
  if (connected) {
    for (const chunk of script.request) socket.write(chunk);
    const answered = await Promise.race([head.promise.then(() => true), closed.then(() => false)]);
    if (answered && statusOf(Buffer.concat(received)) === 101 && !socket.destroyed) {
      for (const chunk of script.frames) socket.write(chunk);
      if (script.cleanClose) socket.write(CLEAN_CLOSE);
    }
    // After a refusal too: an HTTP/1.1 connection stays open for the next request until the client leaves.
    if (answered && script.fin && !socket.destroyed) socket.end();
  }
  const didClose = await closed;
  socket.destroy();
  const response = Buffer.concat(received);
  const status = statusOf(response);
  const frames = status === 101 ? parseFrames(response.subarray(response.indexOf('\r\n\r\n') + 4)) : [];
  const close = frames.findLast((frame) => frame.opcode === 8);
  const closeCode = close !== undefined && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : undefined;
  return { status, frames, closeCode, closed: didClose, response };
}

function statusOf(response: Buffer): number | undefined {
  const end = response.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(response.subarray(0, end).toString('latin1'));
  return match ? Number(match[1]) : undefined;
}

const CLOSE_CODES = [
  0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 1015, 1016, 2999, 3000,
  3999, 4000, 4999, 5000, 65535,
];

function utf8Text(rng: Rng, length: number): Uint8Array {
  const pieces = ['a', 'é', '€', '🚀', ' ', '{', '"', '\n', 'SELECT 1;'];
  let text = '';
  while (Buffer.byteLength(text) < length) text += rng.pick(pieces);
  return Buffer.from(text);
}

/** Byte sequences that are not UTF-8: lone continuation bytes, overlongs, surrogates, truncated sequences. */
const BAD_UTF8 = [
  [0x80],
  [0xc3, 0x28],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x82],
  [0xff],
  [0xf0, 0x9f, 0x9a],
];

function payloadFor(rng: Rng, opcode: number): Uint8Array {
  const size = rng.weighted<number>([
    [6, rng.int(0, 20)],
    [3, rng.int(21, 125)],
    [2, rng.int(126, 4096)],
    [1, rng.int(4097, 70_000)],
  ]);
  // Past max_message_bytes only the size matters (1009), so big payloads are cheap to make.
  if (size > 4096) return new Uint8Array(size).fill(rng.int(0, 255));
  return rng.weighted<() => Uint8Array>([
    [3, () => utf8Text(rng, size)],
    [2, () => rng.bytes(size)],
    [
      2,
      () =>
        Buffer.concat([utf8Text(rng, rng.int(0, 10)), Buffer.from(rng.pick(BAD_UTF8)), utf8Text(rng, rng.int(0, 10))]),
    ],
    [
      opcode === 8 ? 6 : 1,
      () =>
        closePayload(
          rng.pick(CLOSE_CODES),
          rng.chance(0.3) ? Buffer.from(rng.pick(BAD_UTF8)) : utf8Text(rng, rng.int(0, 30)),
        ),
    ],
    [opcode === 8 ? 2 : 0, () => rng.bytes(1)],
  ])();
}

/** One random frame: mostly plausible, with one field wrong often enough to reach every error path. */
export function randomFrame(rng: Rng): FrameSpec {
  const opcode = rng.weighted<number>([
    [3, 1],
    [2, 2],
    [2, 0],
    [2, 8],
    [2, 9],
    [2, 10],
    [2, rng.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])],
  ]);
  const payload = payloadFor(rng, opcode);
  const spec: FrameSpec = {
    fin: rng.chance(0.75),
    rsv: rng.chance(0.85) ? 0 : rng.int(1, 7),
    opcode,
    masked: rng.chance(0.9),
    payload,
    ...(rng.chance(0.1) ? { lengthForm: rng.pick([7, 16, 64] as const) } : {}),
    ...(rng.chance(0.1)
      ? {
          declaredLength: rng.weighted<number>([
            [3, Math.max(0, payload.length + rng.int(-20, 20))],
            [1, rng.int(0, 2 ** 20)],
            [1, 2 ** 53 - 1],
          ]),
        }
      : {}),
  };
  return spec;
}

/** A fragmented message: a data frame with FIN clear, continuations, maybe a control frame in between. */
export function fragmentedMessage(rng: Rng): FrameSpec[] {
  const parts = rng.int(2, 5);
  const frames: FrameSpec[] = [];
  for (let i = 0; i < parts; i++) {
    frames.push({
      fin: i === parts - 1,
      rsv: 0,
      opcode: i === 0 ? rng.pick([1, 2]) : 0,
      masked: true,
      payload: utf8Text(rng, rng.int(0, 40)),
    });
    if (rng.chance(0.3))
      frames.push({
        fin: rng.chance(0.8),
        rsv: 0,
        opcode: rng.pick([9, 10, 1]),
        masked: true,
        payload: rng.bytes(rng.int(0, 130)),
      });
  }
  return frames;
}

/** One fuzzed connection: what to send, how it was built (for a failure message), and the close codes it sends. */
export interface FuzzScript {
  readonly script: Script;
  readonly shape: string;
  readonly clientCloses: readonly number[];
}

const BAD_HEADERS: readonly Record<string, string | undefined>[] = [
  { 'Sec-WebSocket-Key': undefined },
  { 'Sec-WebSocket-Version': '8' },
  { Upgrade: 'websocket, h2c' },
  { Connection: undefined },
  { 'Sec-WebSocket-Key': 'short' },
  { 'Content-Length': '5' },
  { 'Transfer-Encoding': 'chunked' },
  { Host: undefined },
];

/**
 * Mostly a good handshake and one to four random frames; sometimes garbage around it, frames pipelined, or
 * a bad handshake. `headers` go into every handshake (`Sec-WebSocket-Protocol: pgws.v1` for a multiplexed socket).
 */
export function randomScript(
  rng: Rng,
  path: string,
  host: string,
  headers: Record<string, string | undefined> = {},
): FuzzScript {
  const handshake = Buffer.from(upgradeRequest(path, host, headers));
  const frames = rng.chance(0.2)
    ? fragmentedMessage(rng)
    : Array.from({ length: rng.int(1, 4) }, () => randomFrame(rng));
  const encoded = frames.map((frame) => encodeFrame(frame));
  const shape = rng.weighted<string>([
    [14, 'frames'],
    [1, 'garbage before'],
    [1, 'garbage after'],
    [1, 'pipelined'],
    [1, 'bad handshake'],
  ]);
  const garbage = rng.bytes(rng.int(1, 64));
  const request =
    shape === 'garbage before'
      ? [garbage, handshake]
      : shape === 'pipelined'
        ? [handshake, ...encoded]
        : shape === 'bad handshake'
          ? [Buffer.from(upgradeRequest(path, host, { ...headers, ...rng.pick(BAD_HEADERS) }))]
          : [handshake];
  const after = shape === 'garbage after' ? [...encoded, garbage] : shape === 'frames' ? encoded : [];
  const clientCloses = frames
    .filter((f) => f.opcode === 8 && f.payload.length >= 2)
    .map((f) => Buffer.from(f.payload).readUInt16BE(0));
  return { script: { request, frames: after, cleanClose: rng.chance(0.5), fin: true }, shape, clientCloses };
}

/** Close codes a server may end a fuzzed connection with (RFC 6455 §7.4.1); an echo of the client's own close is also fine. */
export const DEFINED_CLOSES: ReadonlySet<number> = new Set([1000, 1002, 1003, 1007, 1009]);

/**
 * Names an exchange's outcome and says whether it is acceptable: a 101 ending in a defined close (or an
 * echo of the client's, or a bare TCP close), or a refused handshake with a 4xx (505 for a request line
 * that is not HTTP/1.x) — never a 500, and never a connection left open after the client's FIN.
 */
export function judge(result: Exchange, clientCloses: readonly number[]): { outcome: string; ok: boolean } {
  const { status, closeCode } = result;
  const echo = closeCode !== undefined && !DEFINED_CLOSES.has(closeCode) && clientCloses.includes(closeCode);
  const outcome =
    status === undefined
      ? 'tcp close before a response'
      : status !== 101
        ? `http ${status}`
        : closeCode !== undefined
          ? echo
            ? 'echo of the client close'
            : `close ${closeCode}`
          : result.frames.some((f) => f.opcode === 8)
            ? 'close without a code'
            : 'tcp close without a close frame';
  const statusOk = status === undefined || status === 101 || status === 505 || (status >= 400 && status < 500);
  const closeOk = closeCode === undefined || DEFINED_CLOSES.has(closeCode) || echo;
  return { outcome, ok: result.closed && statusOk && closeOk };
}
