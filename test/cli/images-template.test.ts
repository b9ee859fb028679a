// `faas images build --name` goes through the SDK's images.build: it must wait as long as the gateway lets a build
// run (BUILD_LIMITS.timeoutMs, 30 min); the SDK's default once gave up after 10 min.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type BuildCallbacks, DEFAULT_BUILD_TIMEOUT_MS, Images } from '@faas/sdk';
import { command } from '../../src/cli/commands/images.js';
import { BUILD_LIMITS } from '../../src/platform/templates.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('faas images build --name (template)', () => {
  it('waits for the build as long as the gateway lets it run', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'faas-template-'));
    try {
      fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM faas/busybox\nRUN echo hi\n');
      let callbacks: BuildCallbacks | undefined;
      vi.spyOn(Images.prototype, 'build').mockImplementation(async (_options, cb) => {
        callbacks = cb;
        return { name: 'tpl', id: 'sha256:0123456789abcdef0123', template: true } as never;
      });
      vi.spyOn(console, 'log').mockImplementation(() => undefined);
      expect(await command.run(['build', '--name', 'tpl', '--url', 'http://127.0.0.1:9', dir])).toBe(0);
      expect(callbacks?.timeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS).toBeGreaterThan(BUILD_LIMITS.timeoutMs);
      expect(callbacks?.onLog).toBeTypeOf('function');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
