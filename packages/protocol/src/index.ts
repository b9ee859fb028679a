export * from './limits.js';
export * from './errors.js';
export * from './rest.js';
export * from './stream.js';
export * from './pools.js';
export * from './images.js';
export * from './tenants.js';
export * from './snapshots.js';
