/** Gateway memory (RSS of the `faas serve` process) with 0 and many idle persistent sandboxes. */
import fs from 'node:fs';
import path from 'node:path';
import { exitOf, startServe } from '../../test/helpers/serve-process.js';
import { post } from '../gateway.js';
import type { BenchRow, BenchSuite } from '../lib.js';

function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1500));
}

export const suite: BenchSuite = {
  name: 'memory',
  async run({ quick, workDir }) {
    const dataDir = path.join(workDir, 'memory');
    const serve = await startServe(['--data-dir', dataDir]);
    const pid = serve.child.pid!;
    const rows: BenchRow[] = [];
    const ids: string[] = [];
    try {
      await settle();
      const base = rssMiB(pid);
      rows.push({ suite: 'memory', name: 'gateway RSS, 0 idle sandboxes', unit: 'MiB', value: base });
      for (const target of quick ? [20, 50] : [50, 200]) {
        while (ids.length < target) {
          const batch = await Promise.all(Array.from({ length: Math.min(4, target - ids.length) }, () => post(`${serve.url}/api/v1/containers`, {})));
          ids.push(...batch.map((b) => b.id as string));
        }
        await settle();
        const rss = rssMiB(pid);
        rows.push({
          suite: 'memory',
          name: `gateway RSS, ${target} idle sandboxes`,
          unit: 'MiB',
          value: rss,
          baseline: { name: 'gateway RSS, 0 idle sandboxes', value: base },
          ratio: rss / base,
          ...(target === 200 ? { goal: '≤ 200 MiB', met: rss <= 200 } : {}),
          note: `${((rss - base) / target).toFixed(2)} MiB per sandbox`,
        });
      }
    } finally {
      for (let i = 0; i < ids.length; i += 8) {
        await Promise.all(ids.slice(i, i + 8).map((id) => fetch(`${serve.url}/api/v1/containers/${id}`, { method: 'DELETE' }).catch(() => undefined)));
      }
      serve.child.kill('SIGTERM');
      await exitOf(serve.child);
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
    return rows;
  },
};
