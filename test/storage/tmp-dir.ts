import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

// Apart from helpers.ts, which processes outside vitest (the crash-writer fixture) import too.
const made: string[] = [];
// Registered when a test file imports this module, so it runs after that file's own afterAll hooks (which close
// the stores in these folders): each file removes the data dirs it made.
afterAll(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder under the system temp dir, removed when the test file is done. */
export function tmpDir(prefix = 'faas-storage-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}
