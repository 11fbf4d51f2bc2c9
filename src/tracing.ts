/**
 * OpenTelemetry behind the small {@link Tracer} of `base/trace.ts`: the only file that imports
 * `@opentelemetry/*`. Off unless the standard environment asks for traces; then spans go through a batch
 * processor to an OTLP/HTTP endpoint (or the console), and `shutdown` flushes what is still queued.
 *
 * Read here, from the environment handed in (OpenTelemetry's SDK configuration spec):
 * `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`), `OTEL_EXPORTER_OTLP_ENDPOINT` and
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL` (`http/protobuf`, `http/json`),
 * `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`. The OTLP
 * exporter itself reads its headers, timeout, compression and certificates (`OTEL_EXPORTER_OTLP_HEADERS`, ...)
 * from the process environment, as it does in every OpenTelemetry SDK.
 */
import type { Context, Span } from '@opentelemetry/api';
import type { Sampler } from '@opentelemetry/sdk-trace';
import { ConfigError } from './base/errors.ts';
import { type SpanAttributes, Spans, type Tracer, type TraceSpan } from './base/trace.ts';

/** Tracing that is on: the tracer to hand down, what it exports to, and the flush at shutdown. */
export interface Tracing {
  readonly tracer: Tracer;
  /** For the startup log: `otlp http/protobuf http://collector:4318/v1/traces`. */
  readonly exporting: string;
  /** Ends the provider: spans still queued are exported first. */
  shutdown(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The packages, loaded only once tracing is on: with it off they cost the process neither startup time nor
 * memory (4.5 MB of resident memory when measured).
 */
async function load(protocol: string) {
  const [api, core, sdk, resources, exporter] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    protocol === 'http/json'
      ? import('@opentelemetry/exporter-trace-otlp-http')
      : import('@opentelemetry/exporter-trace-otlp-proto'),
  ]);
  return { api, core, sdk, resources, exporter };
}
type OpenTelemetry = Awaited<ReturnType<typeof load>>;

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

/**
 * Tracing as the environment asks for it, or undefined when it asks for none: traces are off unless
 * `OTEL_TRACES_EXPORTER` names an exporter or an OTLP endpoint is set, and `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none` turns them off. A value this cannot honour is a ConfigError naming the
 * variable, raised before anything is loaded.
 */
export async function startTracing(env: Env, version: string): Promise<Tracing | undefined> {
  const value = (name: string) => env[name]?.trim() || undefined;
  if (value('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined;
  const endpoint = value('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const base = value('OTEL_EXPORTER_OTLP_ENDPOINT');
  const named = value('OTEL_TRACES_EXPORTER')
    ?.split(',')
    .map((name) => name.trim().toLowerCase());
  const exporters = named ?? (endpoint !== undefined || base !== undefined ? ['otlp'] : []);
  if (exporters.length === 0 || exporters.includes('none')) return undefined;

  const url = endpoint ?? `${(base ?? 'http://localhost:4318').replace(/\/+$/, '')}/v1/traces`;
  const protocol =
    value('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? value('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  for (const name of exporters) {
    if (name !== 'otlp' && name !== 'console') {
      throw new ConfigError(`OTEL_TRACES_EXPORTER: "${name}" is not supported here (otlp, console or none)`);
    }
  }
  if (exporters.includes('otlp') && protocol !== 'http/protobuf' && protocol !== 'http/json') {
    throw new ConfigError(
      `OTEL_EXPORTER_OTLP_PROTOCOL: "${protocol}" is not supported here (http/protobuf or http/json, port 4318)`,
    );
  }
  const sampler = value('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on';
  if (!(SAMPLERS as readonly string[]).includes(sampler)) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER: "${sampler}" is not a sampler this server knows`);
  }
  const ratio = Number(value('OTEL_TRACES_SAMPLER_ARG') ?? 1);
  if (!(ratio >= 0 && ratio <= 1)) {
    throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG: expected 0 to 1, got "${value('OTEL_TRACES_SAMPLER_ARG')}"`);
  }
  const batch = batching(env);

  const otel = await load(protocol);
  const { api } = otel;
  const processors = exporters.map(
    (name) =>
      new otel.sdk.BatchSpanProcessor({
        exporter:
          name === 'console' ? new otel.sdk.ConsoleSpanExporter() : new otel.exporter.OTLPTraceExporter({ url }),
        ...batch,
      }),
  );
  const provider = new otel.sdk.TracerProvider({
    resource: otel.resources.resourceFromAttributes({
      ...otel.core.parseKeyPairsIntoRecord(value('OTEL_RESOURCE_ATTRIBUTES')),
      'service.name': value('OTEL_SERVICE_NAME') ?? 'pg-notify-ws',
      'service.version': version,
    }),
    sampler: samplerOf(otel, sampler as (typeof SAMPLERS)[number], ratio),
    spanProcessors: processors,
  });
  const tracer = provider.getTracer('pg-notify-ws', version);
  const propagator = new otel.core.W3CTraceContextPropagator();
  const kinds = {
    internal: api.SpanKind.INTERNAL,
    producer: api.SpanKind.PRODUCER,
    consumer: api.SpanKind.CONSUMER,
    client: api.SpanKind.CLIENT,
  } as const;

  const wrap = (span: Span): TraceSpan => ({
    set: (attributes) => void span.setAttributes(attributes),
    fail: (reason) => void span.setStatus({ code: api.SpanStatusCode.ERROR, message: reason }),
    child: (name, attributes) => wrap(open(name, attributes, api.trace.setSpan(api.ROOT_CONTEXT, span))),
    end: () => span.end(),
  });
  const open = (name: keyof typeof Spans, attributes: SpanAttributes | undefined, parent: Context) =>
    tracer.startSpan(name, { kind: kinds[Spans[name].kind], ...(attributes && { attributes }) }, parent);

  return {
    tracer: {
      enabled: true,
      start(name, attributes, traceparent) {
        const parent =
          traceparent === undefined
            ? api.ROOT_CONTEXT
            : propagator.extract(api.ROOT_CONTEXT, { traceparent }, api.defaultTextMapGetter);
        return wrap(open(name, attributes, parent));
      },
    },
    exporting: exporters.map((name) => (name === 'otlp' ? `otlp ${protocol} ${url}` : name)).join(', '),
    shutdown: () => provider.shutdown(),
  };
}

/** `OTEL_TRACES_SAMPLER`: the spec's names. */
function samplerOf(otel: OpenTelemetry, name: (typeof SAMPLERS)[number], ratio: number): Sampler {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = otel.sdk;
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}
/** `OTEL_BSP_*`: the batch span processor's queue, batch size and delays; absent ones keep the SDK's defaults. */
function batching(env: Env) {
  const numbers = {
    scheduledDelayMillis: 'OTEL_BSP_SCHEDULE_DELAY',
    exportTimeoutMillis: 'OTEL_BSP_EXPORT_TIMEOUT',
    maxQueueSize: 'OTEL_BSP_MAX_QUEUE_SIZE',
    maxExportBatchSize: 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
  } as const;
  const options: Partial<Record<keyof typeof numbers, number>> = {};
  for (const [key, name] of Object.entries(numbers) as [keyof typeof numbers, string][]) {
    const text = env[name]?.trim();
    if (text === undefined || text === '') continue;
    const number = Number(text);
    if (!Number.isInteger(number) || number < 0)
      throw new ConfigError(`${name}: expected a whole number, got "${text}"`);
    options[key] = number;
  }
  return options;
}
