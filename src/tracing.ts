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
import {
  type Context,
  defaultTextMapGetter,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { parseKeyPairsIntoRecord, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  type Sampler,
  type SpanExporter,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
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

const KINDS = {
  internal: SpanKind.INTERNAL,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  client: SpanKind.CLIENT,
} as const;

const propagator = new W3CTraceContextPropagator();

/**
 * Tracing as the environment asks for it, or undefined when it asks for none: traces are off unless
 * `OTEL_TRACES_EXPORTER` names an exporter or an OTLP endpoint is set, and `OTEL_SDK_DISABLED=true` or
 * `OTEL_TRACES_EXPORTER=none` turns them off. A value this cannot honour is a ConfigError naming the variable.
 */
export function startTracing(env: Env, version: string): Tracing | undefined {
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
  const described: string[] = [];
  const processors = exporters.map((name) => {
    described.push(name === 'otlp' ? `otlp ${protocol} ${url}` : name);
    return new BatchSpanProcessor({ exporter: exporterOf(name, protocol, url), ...batching(env) });
  });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      ...parseKeyPairsIntoRecord(value('OTEL_RESOURCE_ATTRIBUTES')),
      'service.name': value('OTEL_SERVICE_NAME') ?? 'pg-notify-ws',
      'service.version': version,
    }),
    sampler: samplerOf(value('OTEL_TRACES_SAMPLER'), value('OTEL_TRACES_SAMPLER_ARG')),
    spanProcessors: processors,
  });
  const tracer = provider.getTracer('pg-notify-ws', version);

  const wrap = (span: Span): TraceSpan => ({
    set: (attributes) => void span.setAttributes(attributes),
    fail: (reason) => void span.setStatus({ code: SpanStatusCode.ERROR, message: reason }),
    child: (name, attributes) => wrap(open(name, attributes, trace.setSpan(ROOT_CONTEXT, span))),
    end: () => span.end(),
  });
  const open = (name: keyof typeof Spans, attributes: SpanAttributes | undefined, parent: Context) =>
    tracer.startSpan(name, { kind: KINDS[Spans[name].kind], ...(attributes && { attributes }) }, parent);

  return {
    tracer: {
      enabled: true,
      start(name, attributes, traceparent) {
        const parent =
          traceparent === undefined
            ? ROOT_CONTEXT
            : propagator.extract(ROOT_CONTEXT, { traceparent }, defaultTextMapGetter);
        return wrap(open(name, attributes, parent));
      },
    },
    exporting: described.join(', '),
    shutdown: () => provider.shutdown(),
  };
}

function exporterOf(name: string, protocol: string, url: string): SpanExporter {
  if (name === 'console') return new ConsoleSpanExporter();
  if (name !== 'otlp') {
    throw new ConfigError(`OTEL_TRACES_EXPORTER: "${name}" is not supported here (otlp, console or none)`);
  }
  if (protocol === 'http/protobuf') return new ProtobufExporter({ url });
  if (protocol === 'http/json') return new JsonExporter({ url });
  throw new ConfigError(
    `OTEL_EXPORTER_OTLP_PROTOCOL: "${protocol}" is not supported here (http/protobuf or http/json, port 4318)`,
  );
}

/** `OTEL_TRACES_SAMPLER`: the spec's names; the default is `parentbased_always_on`. */
function samplerOf(name = 'parentbased_always_on', arg: string | undefined): Sampler {
  const ratio = () => {
    const number = arg === undefined ? 1 : Number(arg);
    if (!(number >= 0 && number <= 1)) throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG: expected 0 to 1, got "${arg}"`);
    return new TraceIdRatioBasedSampler(number);
  };
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio();
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio() });
    default:
      throw new ConfigError(`OTEL_TRACES_SAMPLER: "${name}" is not a sampler this server knows`);
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
