/**
 * The files API of persistent sandboxes: GET, HEAD and PUT /api/v1/containers/{id}/files?path=P. Bodies are a
 * file's raw bytes; these are the query, the answer of a write and the header carrying permission bits.
 */
import { z } from 'zod';

/** The header of a read carrying the file's permission bits as four octal digits, e.g. `0644`. */
export const FILE_MODE_HEADER = 'x-faas-file-mode';

export const FilePath = z
  .string({ error: (issue) => (issue.input === undefined ? 'path is required, e.g. ?path=/workspace/out.txt' : 'path must be one string') })
  .min(1, 'path must not be empty')
  .max(4096)
  .regex(/^[^\0]*$/, 'path must not contain NUL characters')
  .refine((p) => !p.endsWith('/'), 'path must name a file, not end with "/"')
  .describe("A file in the sandbox: absolute, or relative to the sandbox's working directory.");

/** Permission bits as octal text (`644`, `0755`, `4755`), at most 07777. */
export const FileModeText = z
  .string()
  .regex(/^[0-7]{1,5}$/, 'mode must be octal permission bits, e.g. 0644 or 755')
  .refine((m) => parseInt(m, 8) <= 0o7777, 'mode must be at most 07777')
  .describe('Permission bits in octal (default 0644).');

export const FileReadQuery = z.object({ path: FilePath });
export type FileReadQuery = z.infer<typeof FileReadQuery>;

export const FileWriteQuery = z.object({ path: FilePath, mode: FileModeText.optional() });
export type FileWriteQuery = z.infer<typeof FileWriteQuery>;

export const FileWritten = z.object({
  path: z.string().describe('The absolute path written.'),
  size: z.number().int().describe('Bytes written.'),
  mode: z.string().describe('Permission bits in octal, e.g. `0644`.'),
});
export type FileWritten = z.infer<typeof FileWritten>;

/** `0o644` → `"0644"`. */
export function fileModeText(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}
