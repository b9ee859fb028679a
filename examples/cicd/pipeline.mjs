// CI/CD: run pipeline steps in one sandbox, stream their logs live, stop at the first failure and exit with
// its code. `node examples/cicd/pipeline.mjs` passes; with FAIL_STEP=test the test step fails with exit 2.
import { FaasClient } from '@faas/sdk';

const client = new FaasClient();
const failStep = process.env.FAIL_STEP ?? '';
const steps = [
  { name: 'checkout', command: 'mkdir -p app && echo "int main(){return 0;}" > app/main.c && echo "checked out"' },
  { name: 'build', command: 'for i in 1 2 3; do echo "compiling unit $i"; sleep 0.05; done; echo built > app/artifact' },
  { name: 'test', command: `test -f app/artifact && echo "3 tests passed"${failStep === 'test' ? '; echo "1 test failed" >&2; exit 2' : ''}` },
];

const box = await client.containers.create();
let exitCode = 0;
try {
  for (const step of steps) {
    console.log(`[BUILD] ── ${step.name}`);
    const result = await box.exec({
      command: step.command,
      timeoutMs: 60_000,
      onStdout: (d) => process.stdout.write(`[BUILD] ${d}`),
      onStderr: (d) => process.stderr.write(`[BUILD] ${d}`),
    });
    if (result.exitCode !== 0) {
      console.log(`[BUILD] step ${step.name} failed with exit code ${result.exitCode}`);
      exitCode = result.exitCode;
      break;
    }
  }
} finally {
  await box.delete();
}
process.exitCode = exitCode;
