/** Pure functions: the desired objects of a BloomDeployment's tensor-parallel groups. No I/O. */
export * from './shape.js';
export * from './names.js';
export * from './labels.js';
export * from './owner.js';
export * from './revision.js';
export * from './env.js';
export * from './resources.js';
export * from './gang.js';
export * from './pod.js';
export * from './service.js';
export * from './pdb.js';
export * from './security.js';
export * from './network-policy.js';
