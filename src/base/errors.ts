/**
 * The errors a user can fix, each printed by `main.ts` as one line without a stack: the message says
 * what failed and what to do. Anything else is a bug and keeps its stack.
 */

/** A failed config load (exit 2); `message` is complete and ready to print. */
export class ConfigError extends Error {
  override name = 'ConfigError' as const;

  constructor(message: string, options?: ErrorOptions) {
    // One line whatever the input quoted in it: a key or value with a newline must not split the message.
    super(
      message.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => JSON.stringify(c).slice(1, -1)),
      options,
    );
  }
}

/** A start that cannot proceed for a reason outside the config file (exit 1): a port in use, a blocked directory. */
export class StartupError extends Error {
  override name = 'StartupError' as const;
}

/** A command line that cannot run as given (exit 2): a missing flag, a bad name, a table that does not exist. */
export class UsageError extends Error {
  override name = 'UsageError' as const;
}

/**
 * A LISTEN refused because the instance already LISTENs `max_channels` distinct channels (a worker learns it
 * from the primary, which counts for the whole instance). Clients see it as 503 `channel_limit` on a plain
 * upgrade and as `unavailable` on a subscribe.
 */
export class ChannelLimitError extends Error {
  override name = 'ChannelLimitError' as const;

  constructor(readonly maxChannels: number) {
    super(`channel limit reached (${maxChannels} distinct channels)`);
  }
}

/** Whether `error` is one a user fixes (a config, a command line, a start that cannot proceed): one line, no stack. */
export const isUserError = (error: unknown): error is ConfigError | StartupError | UsageError =>
  error instanceof ConfigError || error instanceof StartupError || error instanceof UsageError;

/** The exit code a command ends with for `error`: 2 for a config or usage error, 1 for anything else. */
export const exitCodeOf = (error: unknown): 1 | 2 =>
  error instanceof ConfigError || error instanceof UsageError ? 2 : 1;
