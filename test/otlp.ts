/**
 * An OTLP/HTTP trace receiver for tests: a real HTTP server on 127.0.0.1 that takes what an OpenTelemetry
 * exporter POSTs to `/v1/traces`, keeps OTLP/JSON spans with their attributes flattened, and the raw
 * bodies of every request (protobuf ones included). Tests wait on spans, never sleep.
 */
import { within } from './harness.ts';

/** One span as received, attributes flattened to plain values. */
export interface ReceivedSpan {
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly kind: number;
  readonly status: { readonly code?: number; readonly message?: string };
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  readonly service: string | undefined;
}

/** A running receiver. `endpoint` is what OTEL_EXPORTER_OTLP_ENDPOINT takes. */
export interface Receiver extends AsyncDisposable {
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Every request: its path, content type and body. */
  readonly requests: { path: string; contentType: string; body: Uint8Array }[];
  /** The first span (received so far or later) that `match` accepts. */
  span(match: (span: ReceivedSpan) => boolean, what: string, ms?: number): Promise<ReceivedSpan>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  kind: number;
  status?: { code?: number; message?: string };
  attributes?: OtlpAttribute[];
}
interface OtlpExport {
  resourceSpans?: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

const plain = (value: OtlpValue) =>
  value.stringValue ??
  value.boolValue ??
  value.doubleValue ??
  (value.intValue === undefined ? '' : Number(value.intValue));
const flatten = (attributes: OtlpAttribute[] = []) =>
  Object.fromEntries(attributes.map(({ key, value }) => [key, plain(value)]));

/** Starts a receiver on a free port of 127.0.0.1. */
export function startReceiver(): Receiver {
  const spans: ReceivedSpan[] = [];
  const requests: Receiver['requests'] = [];
  const waiters = new Set<() => void>();
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      const contentType = request.headers.get('content-type') ?? '';
      const body = new Uint8Array(await request.arrayBuffer());
      requests.push({ path, contentType, body });
      if (contentType.startsWith('application/json')) {
        const exported = JSON.parse(new TextDecoder().decode(body)) as OtlpExport;
        for (const resource of exported.resourceSpans ?? []) {
          const service = flatten(resource.resource?.attributes)['service.name'];
          for (const scope of resource.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              spans.push({
                name: span.name,
                traceId: span.traceId,
                spanId: span.spanId,
                parentSpanId: span.parentSpanId ?? '',
                kind: span.kind,
                status: span.status ?? {},
                attributes: flatten(span.attributes),
                service: typeof service === 'string' ? service : undefined,
              });
            }
          }
        }
      }
      for (const wake of waiters) wake();
      return Response.json({}, { status: 200 });
    },
  });
  const span = async (match: (span: ReceivedSpan) => boolean, what: string, ms = 10_000) => {
    const found = () => spans.find(match);
    const arrived = Promise.withResolvers<ReceivedSpan>();
    const check = () => {
      const span = found();
      if (span !== undefined) arrived.resolve(span);
    };
    waiters.add(check);
    check();
    try {
      return await within(arrived.promise, ms, what);
    } finally {
      waiters.delete(check);
    }
  };
  return {
    endpoint: `http://127.0.0.1:${server.port}`,
    spans,
    requests,
    span,
    [Symbol.asyncDispose]: async () => void (await server.stop(true)),
  };
}
