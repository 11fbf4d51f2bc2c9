/**
 * The contract's table of server frames (docs/PROTOCOL.md, "Server → client"): which types and error codes
 * exist and which fields each type must carry. The fuzzers check every frame a server sends against it.
 */
import { parse } from './mux.ts';

/** Every error `code`, as the contract lists them. */
export const ERROR_CODES = [
  'bad_request',
  'bad_channel',
  'unknown_channel',
  'forbidden',
  'already_subscribed',
  'not_subscribed',
  'invalid_payload',
  'payload_too_large',
  'rate_limited',
  'too_many_subscriptions',
  'unavailable',
];

const isId = (id: unknown) => typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
const isSeq = (seq: unknown) => Number.isSafeInteger(seq) && (seq as number) >= 0;
const isIssue = (issue: unknown) =>
  typeof issue === 'object' &&
  issue !== null &&
  typeof Reflect.get(issue, 'path') === 'string' &&
  typeof Reflect.get(issue, 'message') === 'string';

/**
 * What is wrong with a server frame's text by the contract's table of server frames (the fields each
 * type must have, and their types), or undefined when nothing is. Extra fields are allowed.
 */
export function serverFrameProblem(text: string): string | undefined {
  const f = parse(text);
  if (f.type === '(not a JSON object)') return 'not a JSON object with a type';
  if (f.id !== undefined && !isId(f.id)) return 'an id that is neither a string nor a finite number';
  const channel = typeof f.channel === 'string' && f.channel !== '';
  switch (f.type) {
    case 'ready':
      return (f.subject === null || typeof f.subject === 'string') &&
        (f.expires === null || typeof f.expires === 'number')
        ? undefined
        : 'ready without subject and expires';
    case 'subscribed':
      return channel &&
        typeof f.epoch === 'string' &&
        isSeq(f.seq) &&
        (f.recovered === undefined || typeof f.recovered === 'boolean')
        ? undefined
        : 'subscribed without channel, epoch or seq';
    case 'message':
      return channel && isSeq(f.seq) && (f.seq ?? 0) >= 1 && 'payload' in f
        ? undefined
        : 'message without channel, seq >= 1 or payload';
    case 'gap':
      return channel && typeof f.epoch === 'string' && f.seq === 0 ? undefined : 'gap without channel, epoch or seq 0';
    case 'unsubscribed':
      return channel && (f.reason === 'client' || f.reason === 'forbidden')
        ? undefined
        : 'unsubscribed without channel or reason';
    case 'published':
      return channel ? undefined : 'published without channel';
    case 'pong':
      return undefined;
    case 'error':
      if (!ERROR_CODES.includes(f.code ?? '')) return `an error code outside the contract: ${JSON.stringify(f.code)}`;
      if (typeof f.message !== 'string') return 'an error without a message';
      if (f.issues !== undefined && !(Array.isArray(f.issues) && f.issues.every(isIssue))) return 'malformed issues';
      return f.channel === undefined || typeof f.channel === 'string'
        ? undefined
        : 'an error whose channel is not a string';
    default:
      return `an unknown type ${JSON.stringify(f.type)}`;
  }
}
