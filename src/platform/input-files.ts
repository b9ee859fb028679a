/**
 * Input files of a request (`files`): written into the sandbox as one archive before the command starts, so a
 * program and its data arrive with the request instead of through stdin or a prepared image.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { type InputFile, inputFileBytes } from '@faas/protocol';
import { FaasError } from '../errors.js';
import type { Runtime } from '../runtimes/runtime.js';
import { type TarEntry, tarFiles } from './tar-files.js';

export type InputFiles = Record<string, InputFile>;

/** Where each file goes: relative paths are taken from the working directory; `..` may not climb above `/`. */
function entriesOf(files: InputFiles, workingDir: string): TarEntry[] {
  return Object.entries(files).map(([name, file]) => {
    const target = path.posix.resolve(workingDir, name);
    if (target === '/') throw new FaasError('validation_error', `files: "${name}" names the root folder, not a file`, `files.${name}`);
    const mode = typeof file === 'string' ? undefined : file.mode;
    return { name: target.slice(1), data: inputFileBytes(file), ...(mode !== undefined ? { mode } : {}) };
  });
}

/**
 * Checks the paths (a 400 before anything is created) and returns the archive to write, and the absolute path of
 * every file in it.
 */
export function prepareInputFiles(files: InputFiles, workingDir: string): { archive: Buffer; paths: string[] } {
  const entries = entriesOf(files, workingDir);
  return { archive: tarFiles(entries), paths: entries.map((e) => `/${e.name}`) };
}

/** Why input files cannot go into a read-only sandbox, for the 4xx that says so. */
export const READ_ONLY_FILES =
  "input files cannot be written into a read_only sandbox (the engine's archive API cannot write to its read-only root or reach its tmpfs folders); send the data on stdin, or leave read_only off";

/** Writes the files into a running sandbox (parent folders are made; existing files are replaced). */
export async function writeInputFiles(runtime: Runtime, sandboxId: string, archive: Buffer): Promise<void> {
  await runtime.writeFiles(sandboxId, Readable.from([archive]));
}

/** A digest of the files for the result cache's key: paths as given, content and mode. */
export function inputFilesDigest(files: InputFiles | undefined): string | null {
  if (!files || Object.keys(files).length === 0) return null;
  const h = crypto.createHash('sha256');
  for (const name of Object.keys(files).sort()) {
    const file = files[name]!;
    const mode = typeof file === 'string' ? null : (file.mode ?? null);
    h.update(JSON.stringify([name, mode]));
    h.update(crypto.createHash('sha256').update(inputFileBytes(file)).digest());
  }
  return h.digest('hex');
}
