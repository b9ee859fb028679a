// The advanced-features and data-pipeline examples, run with plain node and the built SDK against a real gateway.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/config.js';
import { useTestGateway } from '../helpers/gateway.js';

const run = promisify(execFile);
const gw = useTestGateway();

async function example(file: string): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(PACKAGE_ROOT, 'examples', file)], {
      env: { ...process.env, FAAS_URL: gw.url },
      cwd: PACKAGE_ROOT,
      timeout: 60_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

describe('examples: snapshots, cache and forks', () => {
  it('advanced-features', async () => {
    const out = await example('advanced-features/modes.mjs');
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/cached: first cached=false, second cached=true in [\d.]+ ms, same output: true/);
    expect(out.stdout).toContain('state: epoch 1 / epoch 2');
    expect(out.stdout).toContain('variant 0: 1 2 3 input.txt | out.txt');
    expect(out.stdout).toContain('variant 1: 3 2 1 input.txt | reversed.txt');
    expect(out.stdout).toContain('copy reads "live state"');
    expect((await gw.gateway.platform.runtime.list()).filter((c) => c.labels['faas.kind'] === 'persistent')).toHaveLength(0);
  });

  it('data-pipeline', async () => {
    const out = await example('data-pipeline/etl.mjs');
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toContain('extract: 100 rows');
    expect(out.stdout.match(/transform threshold \d: \d+ rows kept/g)).toHaveLength(3);
    expect(out.stdout).toMatch(/load: from variant 0 \(threshold 3\), sum \d+/);
    expect(out.stdout).toContain('report: 500500 (cached: true)');
  });
});
