// Runs each example as a user would (plain node, the built SDK) against a real gateway.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/config.js';
import { useTestGateway } from '../helpers/gateway.js';

const run = promisify(execFile);
const gw = useTestGateway();

async function example(file: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(PACKAGE_ROOT, 'examples', file)], {
      env: { ...process.env, FAAS_URL: gw.url, ...env },
      cwd: PACKAGE_ROOT,
      timeout: 60_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

async function leftovers(): Promise<number> {
  return (await gw.gateway.platform.runtime.list()).filter((c) => c.labels['faas.kind'] === 'persistent').length;
}

describe('examples', () => {
  it('quickstart', async () => {
    const out = await example('quickstart/index.mjs');
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain('ephemeral: exit 3, stdout "Hello\\n", stderr "to stderr\\n"');
    expect(out.stdout).toMatch(/persistent sb-[0-9a-f]+: state kept/);
    expect(await leftovers()).toBe(0);
  });

  it('streaming-demo: vibecoding', async () => {
    const out = await example('streaming-demo/vibecoding.mjs');
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain('[editor] created src/math.js');
    expect(out.stdout).toContain('[terminal] build ok');
    expect(out.stdout).toContain('[agent] finished with exit code 0');
  });

  it('streaming-demo: ML metrics', async () => {
    const out = await example('streaming-demo/ml-metrics.mjs');
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.match(/\[dashboard\] epoch \d/g)).toHaveLength(5);
    expect(out.stdout).toContain('epoch 5: loss 3, accuracy 85%');
  });

  it('cicd: live logs, and the failing step decides the exit code', async () => {
    const ok = await example('cicd/pipeline.mjs');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('[BUILD] compiling unit 3');
    expect(ok.stdout).toContain('[BUILD] 3 tests passed');
    const failed = await example('cicd/pipeline.mjs', { FAIL_STEP: 'test' });
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain('[BUILD] 1 test failed');
    expect(failed.stdout).toContain('step test failed with exit code 2');
    expect(await leftovers()).toBe(0);
  });
});
