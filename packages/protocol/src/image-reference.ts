/**
 * What an image name may look like. Checked before any engine call: the engine answers a name with `..` path
 * segments with a redirect, and following it crashed the gateway (an unhandled error in the engine client).
 */

const component = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const domain = '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?';
const path = `${domain}${component}(?:/${component})*`;
const tag = '(?::[\\w][\\w.-]{0,127})?';

/** A Docker image reference without digest: `[host[:port]/]path[:tag]`, path in lower case. */
export const IMAGE_REFERENCE = new RegExp(`^${path}${tag}$`);

/** An image to run: a reference, optionally with a `@sha256:` digest, or an image id (`sha256:<hex>`, or short hex). */
export const RUNNABLE_IMAGE = new RegExp(`^(?:${path}${tag}(?:@sha256:[a-f0-9]{64})?|sha256:[a-f0-9]{64})$`);

export const RUNNABLE_IMAGE_MESSAGE =
  'image must be a Docker image reference such as "faas/python:3" (lower-case path, optional :tag and @sha256: digest) or an image id';
