/**
 * Streaming answers (`Accept: application/x-ndjson`): one JSON event a line. Headers are sent with the first
 * event, so a request that fails before anything ran (unknown image, bad mode) still gets a normal 4xx answer.
 */
import { PassThrough } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { StreamEvent } from '@faas/protocol';
import { FaasError, errorMessage } from '../errors.js';

export function wantsNdjson(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('application/x-ndjson');
}

/**
 * Runs `work`, streaming what it emits. Returns the reply to send (the stream), or throws before the first event
 * so the error handler answers with a status.
 */
export async function streamNdjson(reply: FastifyReply, work: (emit: (event: StreamEvent) => void) => Promise<unknown>): Promise<FastifyReply> {
  const out = new PassThrough();
  let started = false;
  const emit = (event: StreamEvent) => {
    if (!started) {
      started = true;
      void reply.header('content-type', 'application/x-ndjson; charset=utf-8').header('cache-control', 'no-store').send(out);
    }
    out.write(`${JSON.stringify(event)}\n`);
  };
  try {
    await work(emit);
  } catch (err) {
    if (!started) throw err;
    out.write(`${JSON.stringify({ type: 'error', message: errorMessage(err), code: err instanceof FaasError ? err.code : 'internal_error' })}\n`);
  }
  if (!started) {
    throw new FaasError('internal_error', 'the execution ended without producing any event');
  }
  out.end();
  return reply;
}
