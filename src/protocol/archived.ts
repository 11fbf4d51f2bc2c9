/**
 * Pages of a durable channel's table for replays the cache cannot serve (docs/PROTOCOL.md "Durable
 * channels": "replay of a long backlog is paged from the table"). Each row is validated as the live path
 * validates it, so a replayed message is byte for byte what a live subscriber got; a row that fails is skipped
 * here too, but still counts as read, since its seq was taken.
 */
import type { Stats } from '../base/stats.ts';
import type { Catalog } from '../channels/catalog.ts';
import type { Archive } from '../db/archive.ts';
import type { Entry } from './history.ts';

/** Rows read from the table: the seqs of the first and last (undefined when none), and the valid ones. */
export interface Page {
  readonly first: number | undefined;
  readonly last: number | undefined;
  readonly entries: readonly Entry[];
}

/** Reads pages of durable channels. */
export interface Pager {
  /** Whether the channel is durable (so a replay may read its table). */
  durable(channel: string): boolean;
  /** Rows after `after` and at most `upTo`, oldest first, up to {@link PAGE_ROWS}; undefined when the read failed. */
  page(channel: string, after: number, upTo: number): Promise<Page | undefined>;
}

/** Rows per page: a resume of 10,000 is twenty queries, each at most this many payloads in memory. */
export const PAGE_ROWS = 500;

/** Options of {@link createPager}. */
export interface PagerOptions {
  /** The process's query connection (a worker reads with its own). */
  archive: Pick<Archive, 'readAfter'>;
  catalog: Pick<Catalog, 'durable' | 'encode' | 'payloadJson'>;
  maxPayloadBytes: number;
  stats: Stats;
}

/** Creates the pager. */
export function createPager(options: PagerOptions): Pager {
  const { archive, catalog, stats } = options;
  return {
    durable: catalog.durable,
    async page(channel, after, upTo) {
      const limit = Math.min(PAGE_ROWS, upTo - after);
      if (limit <= 0) return { first: undefined, last: undefined, entries: [] };
      const read = await archive.readAfter(channel, after, limit, options.maxPayloadBytes);
      if (!read.ok) return undefined;
      stats.durable.tablePages += 1;
      const rows = read.value.filter((row) => row.seq <= upTo);
      const entries: Entry[] = [];
      for (const row of rows) {
        if (row.payload === undefined) continue;
        const encoded = catalog.encode(channel, row.payload);
        if (!encoded.ok) continue;
        const json = catalog.payloadJson(channel, encoded.frame);
        entries.push({ seq: row.seq, payloadJson: typeof json === 'string' ? json : json(), value: undefined });
      }
      return { first: rows[0]?.seq, last: rows.at(-1)?.seq, entries };
    },
  };
}
