/** The BloomDeployment API: constants, types, schema, defaults, validation, CRD. */
export * from './constants.js';
export * from './types.js';
export * from './defaults-table.js';
export * from './defaults.js';
export * from './env-contract.js';
export * from './schema.js';
export { QUALIFIED_NAME_REGEX } from './schema-spec.js';
export type { CelRule, Json, Schema } from './schema-builder.js';
export * from './crd.js';
export * from './validate.js';
