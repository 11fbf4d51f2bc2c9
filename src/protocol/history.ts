/**
 * A channel's stream: its position `{epoch, seq}` and the last messages kept for resuming
 * (docs/PROTOCOL.md "Positions" and "History and resume").
 *
 * Pure: the listener calls `append` per delivered notification and `reset` whenever it cannot vouch
 * for continuity; a subscribe with `since` calls `resume`. The invariant `resume` relies on: the ring
 * holds exactly the `size` most recent seqs, `head - size + 1 .. head`, with no holes.
 */

/** A stream's position, as the primary numbered a message. */
export interface Position {
  readonly epoch: string;
  readonly seq: number;
}

/** A stream as the primary hands it to a worker: its position and held messages as `[seq, payloadJson]`. */
export interface Snapshot {
  readonly epoch: string;
  readonly head: number;
  readonly entries: readonly (readonly [number, string])[];
}

/** One held message: its seq, the JSON text sent as `payload`, and that value parsed, for filters. */
export interface Entry {
  readonly seq: number;
  readonly payloadJson: string;
  /** The payload as clients see it (parse `payloadJson`, not a schema's richer output) so filters agree. */
  readonly value: unknown;
}

/** What a resume gives: every missed message in order, or nothing at all (never a partial replay). */
export type Resume = { readonly recovered: true; readonly entries: readonly Entry[] } | { readonly recovered: false };

/** A position as a client sends it in `since`. */
export interface Since {
  readonly epoch: string;
  readonly seq: number;
}

/** The position and history of one channel. */
export interface Stream {
  /** Opaque; changes on every `reset`. */
  readonly epoch: string;
  /** The seq of the last appended message; 0 right after a reset. */
  readonly head: number;
  /** Messages held now (at most `capacity`). */
  readonly size: number;
  /** Sum of the held `payloadJson` lengths in UTF-16 code units (see `maxBytes`). */
  readonly bytes: number;
  /** Assigns the next seq to a delivered message, keeps it if history is on, and returns the seq. */
  append(payloadJson: string, value: unknown): number;
  /** Starts a new epoch: head 0, history dropped. Returns the new epoch. */
  reset(): string;
  /** Takes a position from elsewhere (the primary's, in a worker): `epoch` at `head`, history dropped. */
  rebase(epoch: string, head: number): void;
  /**
   * A message numbered elsewhere (a worker follows the primary's streams). Appended when it is the next
   * seq of this epoch; ignored when already held (same epoch, not ahead of head); anything else, another
   * epoch or a hole, rebases to just before it first, so a resume never spans what was missed.
   */
  follow(epoch: string, seq: number, payloadJson: string): void;
  /** Recovers iff `since` is in this epoch, not ahead of head, and every message after it is held. */
  resume(since: Since): Resume;
}

/** Options of `createStream`. */
export interface StreamOptions {
  /** Messages kept for resume; 0 (history off) still counts seqs, so `since` at head recovers. */
  readonly capacity: number;
  /**
   * Evicts the oldest messages while the held payloads exceed this many UTF-16 code units. Code units
   * rather than UTF-8 bytes: `.length` costs nothing per message, and is what a string occupies in
   * memory to within a factor of two. One payload bigger than this alone is not kept at all.
   */
  readonly maxBytes?: number | undefined;
  /** Where epochs come from; the process-wide source by default. Inject a fixed sequence in tests. */
  readonly epochs?: (() => string) | undefined;
}

/**
 * A source of epochs: a random base36 prefix for this process (so a restarted bridge never reuses one)
 * followed by a counter (so no two resets in one process share one, however close together).
 */
export function createEpochSource(prefix = randomPrefix()): () => string {
  let counter = 0;
  return () => `${prefix}.${(++counter).toString(36)}`;
}

function randomPrefix(): string {
  const [high = 0, low = 0] = crypto.getRandomValues(new Uint32Array(2));
  // 48 random bits: a collision across restarts would need ~16 million restarts to become likely.
  return (high * 0x10000 + (low & 0xffff)).toString(36);
}

/** The epoch source every stream in this process shares unless it is given its own. */
export const processEpochs: () => string = createEpochSource();

/** Creates a stream at a fresh epoch, head 0. Throws RangeError on a negative or fractional capacity. */
export function createStream(options: StreamOptions): Stream {
  const { capacity, maxBytes = Number.POSITIVE_INFINITY, epochs = processEpochs } = options;
  if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`history capacity ${capacity}`);
  // Slots are reused in place: append is O(1), nothing shifts, and memory never exceeds `capacity`.
  const ring: (Entry | undefined)[] = new Array(capacity).fill(undefined);
  let epoch = epochs();
  let head = 0;
  let start = 0;
  let size = 0;
  let bytes = 0;

  const evictOldest = () => {
    bytes -= ring[start]!.payloadJson.length;
    ring[start] = undefined;
    start = (start + 1) % capacity;
    size--;
  };

  return {
    get epoch() {
      return epoch;
    },
    get head() {
      return head;
    },
    get size() {
      return size;
    },
    get bytes() {
      return bytes;
    },
    append(payloadJson, value) {
      head++;
      if (capacity === 0) return head;
      if (size === capacity) evictOldest();
      ring[(start + size) % capacity] = { seq: head, payloadJson, value };
      size++;
      bytes += payloadJson.length;
      while (bytes > maxBytes && size > 0) evictOldest();
      return head;
    },
    reset() {
      this.rebase(epochs(), 0);
      return epoch;
    },
    rebase(nextEpoch, nextHead) {
      epoch = nextEpoch;
      head = nextHead;
      ring.fill(undefined);
      start = 0;
      size = 0;
      bytes = 0;
    },
    follow(leaderEpoch, seq, payloadJson) {
      if (leaderEpoch === epoch && seq <= head) return;
      if (leaderEpoch !== epoch || seq !== head + 1) this.rebase(leaderEpoch, seq - 1);
      this.append(payloadJson, undefined);
    },
    resume(since) {
      // Held seqs are head-size+1 .. head, so every seq after `since.seq` is held iff this holds.
      if (since.epoch !== epoch || !Number.isSafeInteger(since.seq)) return { recovered: false };
      if (since.seq > head || since.seq < head - size) return { recovered: false };
      const missed = head - since.seq;
      const entries: Entry[] = [];
      for (let i = size - missed; i < size; i++) entries.push(ring[(start + i) % capacity]!);
      return { recovered: true, entries };
    },
  };
}
