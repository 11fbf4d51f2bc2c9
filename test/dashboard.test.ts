/**
 * The Grafana dashboard (grafana/pg-notify-ws.json) against a running bridge's /metrics: every query names
 * metrics the bridge exports, and every metric it exports is on the dashboard, so neither drifts.
 */
import { expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import dashboard from '../grafana/pg-notify-ws.json' with { type: 'json' };
import { startBridge } from './harness.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

/** Every PromQL query of the dashboard: panel targets (rows' panels included) and query variables. */
function queries(): { where: string; query: string }[] {
  const found: { where: string; query: string }[] = [];
  const visit = (panel: { title?: string; targets?: { expr?: string }[]; panels?: unknown[] }) => {
    for (const target of panel.targets ?? []) found.push({ where: `panel "${panel.title}"`, query: target.expr ?? '' });
    for (const inner of panel.panels ?? []) visit(inner as typeof panel);
  };
  for (const panel of dashboard.panels) visit(panel);
  for (const variable of dashboard.templating.list) {
    const query = variable.query;
    if (typeof query === 'object') found.push({ where: `variable $${variable.name}`, query: query.query });
  }
  return found;
}

/** The names in a PromQL query that look like our metrics. */
const metricsIn = (query: string) => [...query.matchAll(/\bpgws_[a-z0-9_]+/g)].map((match) => match[0]);

test('every query of the dashboard names metrics that /metrics exports, and every exported metric is shown', async () => {
  await using t = await startBridge();
  const text = await (await fetch(new URL('/metrics', t.url))).text();
  const exported = new Set([...text.matchAll(/^# TYPE (\w+) /gm)].map((match) => match[1]));
  const all = queries();
  expect(all.length).toBeGreaterThan(20);
  const unknown = all.flatMap(({ where, query }) => {
    const named = metricsIn(query);
    if (named.length === 0) return [`${where}: names no pgws_ metric: ${query}`];
    return named.filter((name) => !exported.has(name)).map((name) => `${where}: ${name} is not exported`);
  });
  expect(unknown).toEqual([]);
  const shown = new Set(all.flatMap(({ query }) => metricsIn(query)));
  expect([...exported].filter((name) => name?.startsWith('pgws_') && !shown.has(name))).toEqual([]);
});

test('the dashboard file is the one the README names', async () => {
  const readme = await Bun.file(join(import.meta.dir, '..', 'README.md')).text();
  expect(readme.includes('grafana/pg-notify-ws.json')).toBe(true);
  expect(dashboard.uid).toBe('pg-notify-ws');
});
