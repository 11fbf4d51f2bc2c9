/**
 * The README's reference tables are derived from the code's tables (close codes, refusals, metrics): these
 * tests fail when one changes without the other, so the documentation cannot drift.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import * as v from 'valibot';
import { ErrorCode, ErrorStatus } from '../src/base/codes.ts';
import { CutoffReasons, ReferenceProblems, RevocationRefusals } from '../src/base/reasons.ts';
import { Refusals } from '../src/base/refusals.ts';
import { Spans } from '../src/base/trace.ts';
import { Closes, Transports } from '../src/base/wire.ts';
import { AuthSection, ChannelSection, DatabaseSection, ServerSection } from '../src/config/sections.ts';
import { INSTALL_SQL } from '../src/db/script.ts';
import { EVENTS, triggerSql } from '../src/db/trigger.ts';
import { METRICS } from '../src/observe/table.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const readme = await Bun.file(join(import.meta.dir, '..', 'README.md')).text();
const rows = readme.split('\n').filter((line) => line.startsWith('| '));

describe('README tables follow the code', () => {
  test.each(Object.entries(Closes))('close cause %s has its row: code, label, meaning, advice', (label, cause) => {
    expect(rows).toContain(`| ${cause.code} | \`${label}\` | ${cause.when} | ${cause.advice} |`);
  });

  test.each(Object.entries(Refusals))('refusal %s has its row: status, label, meaning, advice', (label, cause) => {
    expect(rows).toContain(`| ${cause.status} | \`${label}\` | ${cause.when} | ${cause.advice} |`);
  });

  test.each(Object.entries(ErrorCode))(
    'protocol error code %s has its row with its meaning and HTTP status',
    (code, meaning) => {
      expect(rows).toContain(`| \`${code}\` | ${meaning} | ${ErrorStatus[code as ErrorCode]} |`);
    },
  );

  test.each(Object.entries(Transports))('transport %s has its row with its meaning', (transport, meaning) => {
    expect(rows).toContain(`| \`${transport}\` | ${meaning} |`);
  });

  test.each(METRICS.map((m) => [m.name, m] as const))('metric %s has its row with its type', (name, metric) => {
    expect(rows.some((row) => row.startsWith(`| \`${name}\` | ${metric.type} |`))).toBe(true);
  });

  test.each(Object.entries(ReferenceProblems))(
    'reference reason %s has its row with its meaning',
    (reason, meaning) => {
      expect(rows).toContain(`| \`${reason}\` | ${meaning} |`);
    },
  );

  test.each(Object.entries({ ...CutoffReasons, ...RevocationRefusals }))(
    'cut-off reason %s has its row with its meaning',
    (reason, meaning) => {
      expect(rows).toContain(`| \`${reason}\` | ${meaning} |`);
    },
  );

  test('the operations section shows every cut-off function with its signature, and the grants the script names', () => {
    const operations = readme.slice(readme.indexOf('## Operations'), readme.indexOf('## Reliability'));
    for (const signature of [
      'pgws.disconnect(subject text, reason text DEFAULT NULL)',
      'pgws.revoke(subject text, before timestamptz DEFAULT now())',
      'pgws.unrevoke(subject text)',
    ]) {
      expect(operations).toContain(signature);
      expect(INSTALL_SQL).toContain(signature);
    }
    expect(INSTALL_SQL).toContain('GRANT SELECT ON pgws.revocations, pgws.disconnects TO bridge_role');
    expect(operations).toContain('GRANT SELECT ON pgws.revocations, pgws.disconnects TO bridge_role');
  });

  test.each(Object.entries(Spans))('span %s has its row: kind, what it covers, attributes', (name, span) => {
    expect(rows).toContain(`| \`${name}\` | ${span.kind} | ${span.covers} | ${span.attributes} |`);
  });

  test('the trigger SQL shown is what `bun run trigger --table orders --channel orders` prints', () => {
    const shown = triggerSql({ schema: 'public', table: 'orders', channel: 'orders', events: EVENTS });
    expect(readme).toContain(`\`\`\`sql\n${shown}\`\`\``);
  });

  const SECTIONS = {
    server: ServerSection,
    database: DatabaseSection,
    auth: AuthSection,
    'channels.NAME': ChannelSection,
  };
  test.each(
    Object.entries(SECTIONS).flatMap(([section, schema]) =>
      Object.entries(schema.entries).map(([key, entry]) => [`[${section}] ${key}`, entry] as const),
    ),
  )('config key %s has its row in the channels.toml table with its default', (key, entry) => {
    const value: unknown = v.getDefault(entry);
    expect(
      rows.some((row) =>
        row.startsWith(`| \`${key}\` | ${value === undefined ? 'none' : `\`${JSON.stringify(value)}\``} |`),
      ),
    ).toBe(true);
  });

  test('every metric the README lists exists', () => {
    const listed = rows.flatMap((row) => /^\| `(pgws_\w+)` \|/.exec(row)?.[1] ?? []);
    expect(listed.filter((name) => !METRICS.some((m) => m.name === name))).toEqual([]);
  });
});
