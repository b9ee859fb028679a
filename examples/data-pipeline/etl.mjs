// A data pipeline: extract once (checkpointed), fork the transform into variants, load from the best one.
import { FaasClient } from '@faas/sdk';

const client = new FaasClient();

// Extract: produce a dataset and checkpoint the sandbox's files.
const extract = await client.execute({
  mode: 'checkpointed',
  command: 'mkdir -p data && for i in $(seq 1 100); do echo "$i,$((i * 7 % 13))"; done > data/raw.csv && wc -l < data/raw.csv',
});
console.log(`extract: ${extract.stdout.trim()} rows, snapshot ${extract.snapshotId.slice(0, 17)}…`);

// Transform: three variants in parallel, each on its own copy of the extracted data.
const thresholds = [3, 6, 9];
const transform = await client.fork({
  parent: extract.snapshotId,
  variants: thresholds.map((t) => ({
    command: `awk -F, '$2 > ${t}' data/raw.csv > data/clean.csv && wc -l < data/clean.csv`,
  })),
});
const kept = transform.variants.filter((v) => v.status === 'ok');
for (const v of kept) console.log(`transform threshold ${thresholds[v.index]}: ${v.result.stdout.trim()} rows kept`);

// Load: continue from the variant that kept the most rows.
const best = kept.reduce((a, b) => (Number(b.result.stdout) > Number(a.result.stdout) ? b : a));
const load = await client.execute({
  mode: 'checkpointed',
  checkpoint: best.snapshotId,
  command: 'awk -F, "{ s += \\$2 } END { print s }" data/clean.csv',
});
console.log(`load: from variant ${best.index} (threshold ${thresholds[best.index]}), sum ${load.stdout.trim()}`);

// Re-running an identical step in cached mode costs nothing the second time.
const report = { mode: 'cached', command: 'seq 1 1000 | awk "{ s += \\$1 } END { print s }"' };
await client.execute(report);
const again = await client.execute(report);
console.log(`report: ${again.stdout.trim()} (cached: ${again.cached})`);

for (const id of [extract.snapshotId, ...kept.map((v) => v.snapshotId), load.snapshotId]) await client.snapshots.delete(id, { force: true });
console.log('snapshots cleaned up');
