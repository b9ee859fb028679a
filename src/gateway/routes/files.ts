/**
 * /api/v1/containers/:id/files?path=P: one file of a persistent sandbox, as raw bytes. GET streams it out (HEAD
 * gives its size and mode only), PUT writes the body into it. The routes live in their own scope, where any body
 * is taken as the file's bytes (whatever its Content-Type) up to LIMITS.maxFileWriteBytes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FILE_MODE_HEADER, FileReadQuery, FileWriteQuery, LIMITS, fileModeText } from '@faas/protocol';
import type { Platform } from '../../platform/platform.js';
import type { SandboxFile } from '../../platform/sandboxes.js';
import { parseWith } from '../errors.js';
import { IdParams } from './containers.js';

export function fileRoutes(app: FastifyInstance, platform: Platform): void {
  const { sandboxes } = platform;

  const open = async (request: FastifyRequest): Promise<SandboxFile> => {
    const { id } = parseWith(IdParams, request.params, 'path');
    const { path } = parseWith(FileReadQuery, request.query, 'query');
    return sandboxes.readFile(request.tenant, id, path);
  };
  const headers = (reply: FastifyReply, file: SandboxFile) =>
    reply
      .header('content-type', 'application/octet-stream')
      .header('content-length', String(file.size))
      .header(FILE_MODE_HEADER, fileModeText(file.mode))
      .header('cache-control', 'no-store');

  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

    // Declared before GET so that fastify does not add its own HEAD, which would read the whole file.
    scope.head('/api/v1/containers/:id/files', async (request, reply) => {
      const file = await open(request);
      file.content.destroy();
      return headers(reply, file).send();
    });

    scope.get('/api/v1/containers/:id/files', async (request, reply) => {
      const file = await open(request);
      // A client that goes away destroys the stream, which lets go of the engine's archive at once.
      return headers(reply, file).send(file.content);
    });

    scope.put('/api/v1/containers/:id/files', { bodyLimit: LIMITS.maxFileWriteBytes }, async (request, reply) => {
      const { id } = parseWith(IdParams, request.params, 'path');
      const { path, mode } = parseWith(FileWriteQuery, request.query, 'query');
      const data = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const written = await sandboxes.writeFile(request.tenant, id, path, data, mode === undefined ? undefined : parseInt(mode, 8));
      return reply.status(written.created ? 201 : 200).send(written.file);
    });
  });
}
