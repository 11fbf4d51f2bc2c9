/** A module schema for the config fuzzer's base.toml (`schema = "./event.ts#Event"`). */
import * as v from 'valibot';

/** One row change, as a row-change trigger sends it. */
export const Event = v.object({
  table: v.string(),
  type: v.picklist(['INSERT', 'UPDATE', 'DELETE']),
  row: v.record(v.string(), v.unknown()),
});

export default Event;
