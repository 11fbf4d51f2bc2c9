/**
 * Preloaded before every test file (bunfig.toml): makes sure TEST_DATABASE_URL points at a PostgreSQL
 * that answers. Without one set, it starts a throwaway embedded PostgreSQL for the run.
 */
import { afterAll, setDefaultTimeout } from 'bun:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { grantTraversal, startEmbeddedPostgres } from '../src/db/embedded.ts';

// Real databases and real processes on a shared 2-core machine: a generous ceiling per test; every
// wait inside a test has its own shorter, named timeout (harness.ts `within`). bun:test keeps this default
// per file (neither this preload nor bunfig's [test] timeout reaches the others), so every test file
// repeats the call at its top.
setDefaultTimeout(60_000);

// As root (CI clones into a 0700 temp folder), the embedded PostgreSQL runs as "postgres" and must be
// able to enter the checkout and the temp dirs; the zero-setup test needs that even with TEST_DATABASE_URL.
const granted = grantTraversal(join(tmpdir(), 'pgws-test-probe'));
if (granted.length > 0) console.log(`test setup: allowed the postgres user to enter ${granted.join(', ')}`);

if (process.env['TEST_DATABASE_URL'] === undefined || process.env['TEST_DATABASE_URL'] === '') {
  const db = await startEmbeddedPostgres({ dataDir: mkdtempSync(join(tmpdir(), 'pgws-test-')), persistent: false });
  process.env['TEST_DATABASE_URL'] = db.url;
  afterAll(() => db.stop());
}

const url = process.env['TEST_DATABASE_URL'] ?? '';
const probe = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
try {
  const [row] = await probe`SELECT current_setting('server_version') AS version`;
  process.env['TEST_DATABASE_VERSION'] = String(row?.['version']);
} catch (error) {
  throw new Error(
    `TEST_DATABASE_URL (${url}) does not answer: ${error instanceof Error ? error.message : String(error)}. Set TEST_DATABASE_URL to a reachable PostgreSQL, or unset it to use the embedded one.`,
  );
} finally {
  await probe.end();
}
