// Vibecoding: an AI agent works in a sandbox; the UI follows what it does, live, over the WebSocket.
import { FaasClient } from '@faas/sdk';

const client = new FaasClient();
const box = await client.containers.create();
const stream = await client.stream(box.id);
try {
  // The "agent" writes a small project and builds it.
  const agent = [
    'mkdir -p src',
    'echo "export const add = (a, b) => a + b;" > src/math.js',
    'echo "console.log(add(2, 3));" > src/main.js',
    'echo "building..."; sleep 0.2; cat src/*.js | wc -l; echo "build ok"',
  ].join(' && ');
  const execId = await stream.exec(agent);
  for await (const event of stream) {
    if (event.type === 'file_event') console.log(`[editor] ${event.event} ${event.path}`);
    if (event.type === 'stdout' && event.exec_id === execId) process.stdout.write(`[terminal] ${event.data}`);
    if (event.type === 'exit' && event.exec_id === execId) {
      console.log(`[agent] finished with exit code ${event.code}`);
      break;
    }
  }
} finally {
  await stream.close();
  await box.delete();
}
