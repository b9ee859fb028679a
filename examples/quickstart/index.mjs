// Quick start: an ephemeral execution, then a persistent sandbox that keeps its files.
import { FaasClient } from '@faas/sdk';

const client = new FaasClient();

// Ephemeral (the default): a fresh sandbox, destroyed after the answer.
const hello = await client.execute({ command: "echo 'Hello'; echo 'to stderr' >&2; exit 3" });
console.log(`ephemeral: exit ${hello.exitCode}, stdout ${JSON.stringify(hello.stdout)}, stderr ${JSON.stringify(hello.stderr)}`);

// Persistent: a sandbox that stays until deleted; files survive commands and a stop/resume.
const box = await client.containers.create({ memoryMb: 128 });
try {
  await box.exec('echo "state kept" > notes.txt');
  await box.stop();
  await box.resume();
  const read = await box.exec(['cat', 'notes.txt']);
  console.log(`persistent ${box.id}: ${read.stdout.trim()}`);
} finally {
  await box.delete();
}
