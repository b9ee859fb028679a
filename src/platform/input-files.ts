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

/** Checks the paths (a 400 before anything is created) and returns the archive to write. */
export function inputFilesArchive(files: InputFiles, workingDir: string): Buffer {
  return tarFiles(entriesOf(files, workingDir));
}

/** Why input files cannot go into a read-only sandbox, for the 4xx that says so. */
export const READ_ONLY_FILES =
  "input files cannot be written into a read_only sandbox (the engine's archive API cannot write to its read-only root or reach its tmpfs folders); send the data on stdin, or leave read_only off";

/**
 * Refuses (409) to write over a directory, symlink or special file: the engine would replace a directory with
 * the file, contents and all. Used where state matters (persistent sandboxes); a fresh sandbox only holds its
 * image's or snapshot's copy.
 */
export async function refuseNonFiles(runtime: Runtime, sandboxId: string, files: InputFiles, workingDir: string): Promise<void> {
  const targets = [...new Set(Object.keys(files).map((name) => path.posix.resolve(workingDir, name)))];
  let next = 0;
  const check = async () => {
    while (next < targets.length) {
      const target = targets[next++]!;
      const there = await runtime.statPath(sandboxId, target);
      if (there.type === 'directory' || there.type === 'symlink' || there.type === 'other') {
        throw new FaasError('conflict', `files: ${target} in sandbox ${sandboxId} is a ${there.type === 'other' ? 'special file' : there.type}, not a file; writing would replace it, so nothing was written`, `files.${target}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, targets.length) }, check));
}

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
