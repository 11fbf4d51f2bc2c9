/** A module schema for the config fuzzer's base.toml (`schema = "./event.ts#Event"`). */
import * as v from 'valibot';

/** One row change, as the README's trigger recipe sends it. */
export const Event = v.object({
  table: v.string(),
  type: v.picklist(['INSERT', 'UPDATE', 'DELETE']),
  row: v.record(v.string(), v.unknown()),
});

export default Event;
