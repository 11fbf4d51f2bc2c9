/**
 * The bytes of logical replication, pure: the CopyData messages of the streaming protocol (PostgreSQL docs,
 * "Streaming Replication Protocol": XLogData, primary keepalive, standby status update) and the pgoutput
 * messages inside XLogData ("Logical Replication Message Formats", protocol version 1) that `replication.ts`
 * needs: Relation, to know a table's columns, Insert, Begin and Commit. Everything else is skipped.
 */

/** A position in the WAL. */
export type Lsn = bigint;

/** One CopyData message from the server. */
export type Copied =
  | { readonly kind: 'xlog'; readonly data: Uint8Array }
  | { readonly kind: 'keepalive'; readonly end: Lsn; readonly replyRequested: boolean }
  | { readonly kind: 'other' };

/** Reads a CopyData payload: XLogData ('w') or a primary keepalive ('k'). */
export function readCopyData(bytes: Uint8Array): Copied {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // 'w', WAL start, WAL end, send time: 25 bytes before the pgoutput message.
  if (bytes[0] === 0x77) return { kind: 'xlog', data: bytes.subarray(25) };
  if (bytes[0] === 0x6b) return { kind: 'keepalive', end: view.getBigUint64(1), replyRequested: bytes[17] === 1 };
  return { kind: 'other' };
}

// PostgreSQL's epoch, in microseconds since the Unix epoch.
const PG_EPOCH_MICROS = BigInt(Date.UTC(2000, 0, 1)) * 1000n;

/**
 * A standby status update ('r'): everything up to `lsn` written, flushed and applied, so the server may
 * recycle the WAL before it. `replyRequested` asks for a keepalive at once (a liveness probe).
 */
export function statusUpdate(lsn: Lsn, nowMs: number, replyRequested: boolean): Uint8Array {
  const bytes = new Uint8Array(34);
  const view = new DataView(bytes.buffer);
  bytes[0] = 0x72;
  view.setBigUint64(1, lsn);
  view.setBigUint64(9, lsn);
  view.setBigUint64(17, lsn);
  view.setBigInt64(25, BigInt(Math.round(nowMs)) * 1000n - PG_EPOCH_MICROS);
  bytes[33] = replyRequested ? 1 : 0;
  return bytes;
}

/** What a pgoutput message meant, as far as the bridge cares. */
export type Change =
  | { readonly kind: 'begin' }
  /** A row inserted into `schema.table`, its columns in text (null: SQL NULL or not sent). */
  | {
      readonly kind: 'insert';
      readonly schema: string;
      readonly table: string;
      readonly row: Record<string, string | null>;
    }
  /** The transaction's end: `end` is where the WAL after it starts. */
  | { readonly kind: 'commit'; readonly end: Lsn }
  | { readonly kind: 'other' };

interface Relation {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly string[];
}

const text = new TextDecoder();

/** Decodes pgoutput messages; remembers the relations the server described, which later inserts refer to. */
export function createDecoder(): (data: Uint8Array) => Change {
  const relations = new Map<number, Relation>();
  return (data) => {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let at = 1;
    const string = () => {
      const end = data.indexOf(0, at);
      const value = text.decode(data.subarray(at, end));
      at = end + 1;
      return value;
    };
    switch (data[0]) {
      case 0x42: // 'B'
        return { kind: 'begin' };
      case 0x43: // 'C': flags, commit LSN, end LSN, time
        return { kind: 'commit', end: view.getBigUint64(10) };
      case 0x52: {
        // 'R': id, namespace (empty for pg_catalog), name, replica identity, columns (flags, name, type, typmod)
        const id = view.getUint32(at);
        at += 4;
        const schema = string() || 'pg_catalog';
        const table = string();
        at += 1;
        const count = view.getUint16(at);
        at += 2;
        const columns: string[] = [];
        for (let i = 0; i < count; i++) {
          at += 1;
          columns.push(string());
          at += 8;
        }
        relations.set(id, { schema, table, columns });
        return { kind: 'other' };
      }
      case 0x49: {
        // 'I': relation id, 'N', tuple data
        const relation = relations.get(view.getUint32(at));
        if (relation === undefined) return { kind: 'other' };
        at += 5;
        return { kind: 'insert', schema: relation.schema, table: relation.table, row: tuple(relation, view, at) };
      }
      default:
        return { kind: 'other' };
    }
  };
}

/** TupleData: a count, then per column 'n' (null), 'u' (unchanged TOAST), or 't' / 'b' with a length. */
function tuple(relation: Relation, view: DataView, start: number): Record<string, string | null> {
  const row: Record<string, string | null> = {};
  const count = view.getUint16(start);
  let at = start + 2;
  for (let i = 0; i < count; i++) {
    const kind = view.getUint8(at);
    at += 1;
    const name = relation.columns[i] ?? String(i);
    if (kind === 0x74 || kind === 0x62) {
      const length = view.getUint32(at);
      at += 4;
      row[name] = text.decode(new Uint8Array(view.buffer, view.byteOffset + at, length));
      at += length;
    } else row[name] = null;
  }
  return row;
}
