/**
 * The payload of the `orders` channel, as sent by the trigger `bun run trigger --table orders --channel orders`
 * generates: `{"table", "schema", "type", "row"}`.
 *
 * The server validates and parses every notification with it; a consumer can import the same module
 * for its TypeScript types: `import type { OrderEventOutput } from './schemas/order.ts'`.
 */
import * as v from 'valibot';

const Order = v.object({
  id: v.pipe(v.number(), v.integer()),
  status: v.optional(v.picklist(['new', 'paid', 'shipped', 'cancelled']), 'new'),
  total: v.optional(v.pipe(v.union([v.number(), v.string()]), v.transform(Number), v.number())),
});

/** One row change on the orders table. */
export const OrderEvent = v.object({
  table: v.string(),
  schema: v.string(),
  type: v.picklist(['INSERT', 'UPDATE', 'DELETE']),
  row: Order,
});

/** What consumers receive (defaults filled in, `total` as a number). */
export type OrderEventOutput = v.InferOutput<typeof OrderEvent>;

export default OrderEvent;
