/**
 * `npm run bench [-- --quick] [-- --only core,storage]`: runs the suites, prints one table and writes
 * bench/results/<timestamp>.json and bench/results/latest.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../src/config.js';
import { type BenchRow, type BenchSuite, settleMachine } from './lib.js';

const SUITES: Record<string, () => Promise<{ suite: BenchSuite }>> = {
  core: () => import('./suites/core.js'),
  stream: () => import('./suites/stream.js'),
  memory: () => import('./suites/memory.js'),
  storage: () => import('./suites/storage.js'),
  dependencies: () => import('./suites/dependencies.js'),
  snapshots: () => import('./suites/snapshots.js'),
};

function fmt(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return '';
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' } } });
  const quick = values.quick ?? false;
  const names = values.only ? values.only.split(',') : Object.keys(SUITES);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-bench-'));
  const rows: BenchRow[] = [];
  const started = new Date();
  try {
    for (const name of names) {
      const load = SUITES[name];
      if (!load) throw new Error(`unknown suite "${name}"; known: ${Object.keys(SUITES).join(', ')}`);
      const settled = await settleMachine();
      const waited = settled.waitedMs > 1500 ? ` (after ${(settled.waitedMs / 1000).toFixed(0)} s for the machine to settle${settled.busy !== null && settled.busy >= 0.15 ? `; still ${(settled.busy * 100).toFixed(0)}% busy` : ''})` : '';
      console.error(`[bench] ${name}${quick ? ' (quick)' : ''} …${waited}`);
      const { suite } = await load();
      rows.push(...(await suite.run({ quick, workDir })));
    }
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  console.table(
    rows.map((r) => ({
      suite: r.suite,
      figure: r.name,
      value: `${fmt(r.value)} ${r.unit}`,
      p95: fmt(r.p95),
      baseline: r.baseline ? `${fmt(r.baseline.value)} ${r.unit} (${r.baseline.name})` : '',
      ratio: r.ratio !== undefined ? `${fmt(r.ratio)}×` : '',
      goal: r.goal ? `${r.goal} ${r.met ? '✓' : '✗'}` : '',
    })),
  );
  const result = { started: started.toISOString(), quick, machine: { cpus: os.cpus().length, memory_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version }, rows };
  const dir = path.join(PACKAGE_ROOT, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify(result, null, 2));
  fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(result, null, 2));
  console.error(`[bench] wrote ${path.relative(process.cwd(), file)} and bench/results/latest.json`);
}

main().catch((err) => {
  console.error(`[bench] failed: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
});
