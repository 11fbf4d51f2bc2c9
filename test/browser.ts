/**
 * Real Chromium for the console's tests: Debian's /usr/bin/chromium driven by playwright-core (which
 * downloads no browser), a fresh profile per run, and screenshots in `.screenshots/` (git-ignored) for a
 * person to look at. Where Chromium is not installed the browser tests skip, and say so loudly.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Locator, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Whether the browser tests can run here; when not, the reason has been printed to stderr. */
export const chromiumInstalled = existsSync(CHROMIUM);
if (!chromiumInstalled) {
  const bar = '!'.repeat(100);
  console.error(
    `\n${bar}\nBROWSER TESTS SKIPPED: ${CHROMIUM} is not installed, so the console was NOT tested in a browser.\n` +
      `Install it with \`apt-get install -y chromium\` (.ci/run does this as root).\n${bar}\n`,
  );
}

export const SCREENSHOTS = join(import.meta.dir, '..', '.screenshots');

// As the machine notes say: without the background-networking flags Chromium keeps dialling Google's
// hosts, which a closed network refuses. --no-sandbox because CI runs as root.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** One Chromium for a test file, with a profile directory of its own that is removed with it. */
export interface Browser extends AsyncDisposable {
  /** Opens the console of the bridge at `base` (with `?channel=` for each of `channels`, and `?transport=`). */
  open(
    base: URL,
    options?: { channels?: string[]; transport?: string; width?: number; height?: number },
  ): Promise<ConsolePage>;
  /** Opens any page (for scripts of a test's own, such as an `EventSource`); closed by the caller. */
  page(url: URL): Promise<Page>;
}

/** A console tab; disposing it checks that the page threw nothing. */
export interface ConsolePage extends AsyncDisposable {
  readonly page: Page;
  /** The subscription row of `channel`. */
  sub(channel: string): Locator;
  /** Message entries (not events), optionally of one channel. */
  messages(channel?: string): Locator;
  /** Event entries whose text contains `text`. */
  events(text: string | RegExp): Locator;
  /** Saves `.screenshots/<name>.png`. */
  shot(name: string): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'pgws-chromium-'));
  const context: BrowserContext = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: ARGS,
    viewport: { width: 1280, height: 800 },
  });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    async open(base, options = {}) {
      const page = await context.newPage();
      await page.setViewportSize({ width: options.width ?? 1280, height: options.height ?? 800 });
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      const query = [
        ...(options.transport === undefined ? [] : [`transport=${options.transport}`]),
        ...(options.channels ?? []).map((c) => `channel=${encodeURIComponent(c)}`),
      ].join('&');
      await page.goto(new URL(query ? `/?${query}` : '/', base).href);
      // Set by the console's module once the channel list is loaded and ?channel= subscriptions are made.
      await page.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
      const attr = (channel: string) => `[data-channel=${JSON.stringify(channel)}]`;
      return {
        page,
        sub: (channel) => page.locator(`#subs > li${attr(channel)}`),
        messages: (channel) => page.locator(`#log > li.msg${channel === undefined ? '' : attr(channel)}`),
        events: (text) => page.locator('#log > li.ev', { hasText: text }),
        shot: async (name) => {
          await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
        },
        async [Symbol.asyncDispose]() {
          await page.close();
          if (errors.length > 0) throw new Error(`the console threw: ${errors.join('; ')}`);
        },
      };
    },
    async page(url) {
      const page = await context.newPage();
      await page.goto(url.href);
      return page;
    },
    async [Symbol.asyncDispose]() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
