/** A test gateway and an SDK client for it, with the sandboxes a test creates removed after it. */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { FaasClient, type Sandbox } from '@faas/sdk';
import { startTestGateway, type TestGateway } from './gateway.js';

export interface SdkTestContext {
  gw: TestGateway;
  client: FaasClient;
  /** Removed after each test (a test that deletes one itself takes it out). */
  created: Sandbox[];
  /** A new persistent sandbox, removed after the test. */
  sandbox(): Promise<Sandbox>;
}

/** Call at the top of a test file: registers the hooks; the fields are set once `beforeAll` ran. */
export function sdkTestContext(): SdkTestContext {
  const ctx = { created: [] as Sandbox[] } as SdkTestContext;
  ctx.sandbox = async () => {
    const s = await ctx.client.containers.create();
    ctx.created.push(s);
    return s;
  };
  beforeAll(async () => {
    ctx.gw = await startTestGateway();
    ctx.client = new FaasClient({ baseUrl: ctx.gw.url });
  });
  afterEach(async () => {
    for (const s of ctx.created.splice(0)) await s.delete().catch(() => undefined);
  });
  afterAll(async () => {
    await ctx.gw?.close();
  });
  return ctx;
}
