/**
 * `bun run soak`: the fuzz and leak tests at a larger scale. FUZZ_SCALE (default 20) multiplies every fuzz
 * count and the leak rounds; FUZZ_SEED replays a run; SOAK_DEADLINE_S (default 600) bounds the whole run.
 * Prints the tests' count lines at the end and exits with the test run's code.
 */
import { join } from 'node:path';
import { within } from './wait.ts';

const root = join(import.meta.dir, '..');
const scale = process.env['FUZZ_SCALE'] ?? '20';
const deadlineSeconds = Number(process.env['SOAK_DEADLINE_S'] ?? '600');
const files = ['test/fuzz.test.ts', 'test/leak.test.ts'];

console.log(
  `soak: FUZZ_SCALE=${scale}${process.env['FUZZ_SEED'] ? ` FUZZ_SEED=${process.env['FUZZ_SEED']}` : ''}, deadline ${deadlineSeconds} s: bun test ${files.join(' ')}`,
);
const started = performance.now();
const child = Bun.spawn(['bun', 'test', ...files], {
  cwd: root,
  env: { ...process.env, FUZZ_SCALE: scale },
  stdout: 'pipe',
  stderr: 'pipe',
});
/** Echoes a stream as it comes and keeps the count lines the tests print. */
async function relay(stream: ReadableStream<Uint8Array>, write: (text: string) => void, keep: string[]): Promise<void> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    write(text);
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    keep.push(...lines.filter((line) => /^(fuzz|leak)\b/.test(line) || /^\s*\d+ (pass|fail)$/.test(line)));
  }
}

const summary: string[] = [];
const finished = Promise.all([
  relay(child.stdout, (text) => process.stdout.write(text), summary),
  relay(child.stderr, (text) => process.stderr.write(text), summary),
]).then(() => child.exited);
const code = await within(finished, deadlineSeconds * 1000, 'the soak run (SOAK_DEADLINE_S)').catch((error) => {
  console.error(`soak: ${error instanceof Error ? error.message : String(error)}; stopping it`);
  child.kill('SIGKILL');
  return finished;
});
console.log(`\nsoak summary (${((performance.now() - started) / 1000).toFixed(0)} s, exit ${code}):`);
for (const line of summary) console.log(`  ${line.trim()}`);
process.exit(code);
