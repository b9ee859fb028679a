/**
 * Which images a tenant may run: any image of the engine, except templates (images built through the API) of
 * another tenant, which are answered as missing, like every other tenant-owned thing.
 */
import { FaasError } from '../errors.js';
import type { Runtime } from '../runtimes/runtime.js';
import { TEMPLATE_LABEL, TENANT_LABEL } from './templates.js';
import { DEFAULT_TENANT } from './tenants.js';

/** Resolves the image (pulling once if missing) and checks the tenant may use it; returns its immutable id. */
export async function resolveImageFor(runtime: Runtime, tenant: string, image: string): Promise<string> {
  const id = await runtime.resolveImage(image);
  const labels = await runtime.imageLabels(image);
  if (labels[TEMPLATE_LABEL] === 'true' && (labels[TENANT_LABEL] ?? DEFAULT_TENANT) !== tenant) {
    throw new FaasError('image_not_found', `image "${image}" is not present in the engine; name an image from \`faas images ls\``, 'image');
  }
  return id;
}
