// The specification's execution modes in TypeScript: cached, checkpointed (with resume), branched (fork).
import { FaasClient } from '@faas/sdk';

const client = new FaasClient();

// 2. Cached mode: the first run executes, the second identical one is answered from the cache.
const expensive = 'echo "computed $(cat /proc/sys/kernel/random/uuid)"; sleep 0.5';
const first = await client.execute({ mode: 'cached', command: expensive });
const t = performance.now();
const second = await client.execute({ mode: 'cached', command: expensive });
console.log(`cached: first cached=${first.cached}, second cached=${second.cached} in ${(performance.now() - t).toFixed(1)} ms, same output: ${first.stdout === second.stdout}`);

// 3. Checkpointed mode: snapshot at completion, resume from it later.
const trained = await client.execute({ mode: 'checkpointed', command: 'mkdir -p model && echo "epoch 1" > model/state' });
const resumed = await client.execute({
  mode: 'checkpointed',
  checkpoint: trained.snapshotId,
  command: 'echo "epoch 2" >> model/state && cat model/state',
});
console.log(`checkpointed: resumed from ${trained.snapshotId.slice(0, 17)}…, state: ${resumed.stdout.trim().split('\n').join(' / ')}`);

// 4. Branched mode: a default-mode parent, forked into two variants that do not see each other's writes.
const parent = await client.execute({ command: 'echo "3 1 2" > input.txt' });
const fork = await client.fork({
  parent: parent.id,
  variants: [
    { command: 'tr " " "\\n" < input.txt | sort -n | tr "\\n" " " > out.txt; cat out.txt; ls' },
    { command: 'tr " " "\\n" < input.txt | sort -rn | tr "\\n" " " > reversed.txt; cat reversed.txt; ls' },
  ],
});
for (const v of fork.variants) {
  if (v.status === 'ok') console.log(`variant ${v.index}: ${v.result.stdout.trim().replace(/\n/g, ' | ')}`);
  else console.log(`variant ${v.index} failed: ${v.message}`);
}

// Snapshots of a live sandbox: checkpoint, then start a new sandbox from it.
const box = await client.containers.create({});
try {
  await box.exec('echo "live state" > notes.txt');
  const snap = await box.checkpoint('notes');
  const copy = await client.containers.create({ checkpoint: snap.id });
  try {
    console.log(`sandbox checkpoint "${snap.name}": copy reads "${(await copy.exec('cat notes.txt')).stdout.trim()}"`);
  } finally {
    await copy.delete();
  }
} finally {
  await box.delete();
}
console.log(`snapshots listed: ${(await client.snapshots.list()).length > 0}`);
console.log(`cache cleared: ${await client.cache.clear()} result(s)`);
