/**
 * The client as a browser ES module for `GET /client.js`, bundled once at startup with `Bun.build`, so a
 * page can `import { createClient } from "http://host:8080/client.js"` with no build step of its own.
 */
import { join } from 'node:path';

/** Bundles `client.ts` (no dependencies) into one minified ES module text. */
export async function bundleClient(): Promise<string> {
  const result = await Bun.build({
    entrypoints: [join(import.meta.dir, 'client.ts')],
    target: 'browser',
    format: 'esm',
    minify: true,
  });
  const [output] = result.outputs;
  if (!result.success || output === undefined) throw new Error(`bundling the client failed: ${result.logs.join('; ')}`);
  return output.text();
}
