/**
 * Structured logs: one JSON object per line (`time`, `level`, `scope`, `message`, then fields), or a
 * compact human form when the output is a terminal. The sink is passed in, so nothing here touches
 * stdout by itself and tests can collect lines.
 */
export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

/** Extra structured context; values must be JSON-serialisable. */
export type Fields = Readonly<Record<string, unknown>>;

/** A scoped logger. `child('listener')` makes one whose lines say `scope: "listener"`. */
export interface Logger {
  debug(message: string, fields?: Fields): void;
  info(message: string, fields?: Fields): void;
  warn(message: string, fields?: Fields): void;
  error(message: string, fields?: Fields): void;
  child(scope: string): Logger;
}

/** Options for {@link createLogger}; `pretty` defaults to false (JSON lines). */
export interface LoggerOptions {
  level?: Level;
  pretty?: boolean;
  write: (line: string) => void;
  now?: () => Date;
}

/** Reads a level name such as `LOG_LEVEL=warn`; anything else is an error naming the choices. */
export function parseLevel(text: string): Level {
  const level = LEVELS.find((l) => l === text.toLowerCase());
  if (level === undefined) throw new Error(`LOG_LEVEL: expected one of ${LEVELS.join(', ')}, got "${text}"`);
  return level;
}

/** Creates the root logger (scope `bridge`). */
export function createLogger(options: LoggerOptions): Logger {
  const min = LEVELS.indexOf(options.level ?? 'info');
  const now = options.now ?? (() => new Date());
  const format = options.pretty ? formatPretty : formatJson;
  const make = (scope: string): Logger => {
    const at = (level: Level) => (message: string, fields?: Fields) => {
      if (LEVELS.indexOf(level) < min) return;
      options.write(format(now(), level, scope, message, fields));
    };
    return {
      debug: at('debug'),
      info: at('info'),
      warn: at('warn'),
      error: at('error'),
      child: (child) => make(child),
    };
  };
  return make('bridge');
}

/** A logger that drops everything; for tests and benchmarks that measure the server itself. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

function formatJson(time: Date, level: Level, scope: string, message: string, fields?: Fields): string {
  return JSON.stringify({ time: time.toISOString(), level, scope, message, ...fields }, replacer);
}

function formatPretty(time: Date, level: Level, scope: string, message: string, fields?: Fields): string {
  const extra = fields === undefined ? '' : ` ${JSON.stringify(fields, replacer)}`;
  return `${time.toISOString().slice(11, 23)} ${level.toUpperCase().padEnd(5)} [${scope}] ${message}${extra}`;
}

// Errors serialise to {} by default; a log line must say what failed.
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}
