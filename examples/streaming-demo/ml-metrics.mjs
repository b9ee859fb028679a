// ML training: the training loop reports metrics as custom events; a dashboard receives them live.
import { FaasClient } from '@faas/sdk';

const client = new FaasClient();
const box = await client.containers.create();
const stream = await client.stream(box.id);
try {
  // Any process can write one JSON line {"name": ..., "data": ...} to $FAAS_EVENTS.
  const training = `
    loss=100; acc=10
    for epoch in 1 2 3 4 5; do
      loss=$((loss / 2)); acc=$((acc + 15))
      echo "{\\"name\\":\\"metrics\\",\\"data\\":{\\"epoch\\":$epoch,\\"loss\\":$loss,\\"accuracy\\":$acc}}" > "$FAAS_EVENTS"
      sleep 0.05
    done`;
  const execId = await stream.exec(training);
  for await (const event of stream) {
    if (event.type === 'custom' && event.name === 'metrics') {
      const { epoch, loss, accuracy } = event.data;
      console.log(`[dashboard] epoch ${epoch}: loss ${loss}, accuracy ${accuracy}%`);
    }
    if (event.type === 'exit' && event.exec_id === execId) break;
  }
} finally {
  await stream.close();
  await box.delete();
}
