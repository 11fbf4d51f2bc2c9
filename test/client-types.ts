/**
 * Type tests for the client, checked by `tsc --noEmit` (never run): each `@ts-expect-error` must be an
 * error, or tsc fails on the unused directive. `Channels` comes from a module schema and from the output of
 * `bun run types` (test/fixtures/channels.d.ts, regenerated and compared by test/types.test.ts).
 */
import type * as v from 'valibot';
import type { OrderEvent } from '../schemas/order.ts';
import { createClient } from '../src/client/client.ts';
import type { Channels as Generated } from './fixtures/channels.d.ts';

type Channels = { orders: v.InferOutput<typeof OrderEvent>; chat: string };

export function typed(): void {
  const client = createClient<Channels>({ url: 'ws://127.0.0.1:8080/' });
  client.subscribe('orders', {
    onMessage(payload, { seq, epoch }) {
      const kind: string = payload.type;
      const position: [number, string] = [seq, epoch];
      // @ts-expect-error the payload has no such field
      payload.nope;
      void [kind, position];
    },
  });
  client.subscribe('chat', {
    onMessage(text) {
      text.toUpperCase();
    },
  });
  void client.publish('chat', 'hello');
  // @ts-expect-error a raw channel takes a string
  void client.publish('chat', 42);
  // @ts-expect-error not a channel of this client
  client.subscribe('nope', { onMessage() {} });

  const generated = createClient<Generated>({ url: 'ws://127.0.0.1:8080/' });
  void generated.publish('inventory', { sku: 'AB-12', quantity: 3, warehouse: 'main' });
  // @ts-expect-error quantity is an integer in the inline schema
  void generated.publish('inventory', { sku: 'AB-12', quantity: 'three', warehouse: 'main' });
}

export function generatedShapes(message: Generated['orders'], chat: Generated['chat room']): void {
  const sample: Generated['inventory'] = { sku: 'AB-12', quantity: 3, warehouse: 'main' };
  const status: 'new' | 'paid' | 'shipped' | 'cancelled' | undefined = message.row.status;
  chat.toUpperCase();
  // @ts-expect-error the generated output type has every default filled in: warehouse is required
  const missing: Generated['inventory'] = { sku: 'AB-12', quantity: 3 };
  void [sample, status, missing];
}
