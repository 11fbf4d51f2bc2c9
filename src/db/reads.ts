/**
 * Statements on `pgws`'s tables whose failure is data, not an exception: what failed is sorted into
 * `missing` (the install script was not run, or is older), `forbidden` (the bridge's role lacks a
 * privilege) or `failed` (anything else: the connection, a timeout), so each caller can say what to do.
 */

/** Why a statement on pgws could not run: `missing` (not installed), `forbidden` (a privilege), or anything else. */
export type Unread = {
  readonly ok: false;
  readonly reason: 'missing' | 'forbidden' | 'failed';
  readonly error: unknown;
};

/** A read of pgws's tables, or why it failed. */
export type Read<T> = { readonly ok: true; readonly value: T } | Unread;

// PG SQLSTATEs: pgws (or a part of it) is not installed; the role lacks a privilege.
const NOT_INSTALLED = new Set(['3F000', '42P01', '42883']);
export const FORBIDDEN = '42501';

/** The SQLSTATE of a postgres.js error, if it has one. */
export const sqlState = (error: unknown): unknown => (error as { code?: unknown } | undefined)?.code;

/** Whether a SQLSTATE says that pgws, or the part of it a statement uses, is not installed. */
export const isNotInstalled = (code: unknown): boolean => NOT_INSTALLED.has(String(code));

/** Sorts a failed statement's error. */
export const unread = (error: unknown): Unread => {
  const code = sqlState(error);
  return {
    ok: false,
    reason: isNotInstalled(code) ? 'missing' : code === FORBIDDEN ? 'forbidden' : 'failed',
    error,
  };
};

/** Runs a read of pgws's tables; a failure is data. */
export const read = async <T>(run: () => Promise<T>): Promise<Read<T>> => {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    return unread(error);
  }
};
