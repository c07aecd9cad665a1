/**
 * withDefaults applies the OpenAPI `default`s of the CRD schema, the way the API server does
 * (structural defaulting: a missing property with a default gets it, then defaulting recurses into
 * every present property, including the defaulted ones). Because it walks the same schema the CRD
 * is generated from, the controller and the API server cannot disagree on a default.
 */
import { bloomDeploymentSchema } from './schema.js';
import type { Json, Schema } from './schema-builder.js';
import type { BloomDeployment, BloomDeploymentManifest, BloomDeploymentSpec, DeepPartial } from './types.js';

let cachedSchema: Schema | undefined;
/** The BloomDeployment schema, built once. */
export function schema(): Schema {
  cachedSchema ??= bloomDeploymentSchema();
  return cachedSchema;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Returns a defaulted deep copy of `value`; never mutates its argument. */
export function applySchemaDefaults(value: unknown, node: Schema): unknown {
  if (Array.isArray(value)) {
    return node.items ? value.map((item) => applySchemaDefaults(item, node.items as Schema)) : structuredClone(value);
  }
  if (!isPlainObject(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    const childSchema = node.properties?.[key] ?? node.additionalProperties;
    out[key] = childSchema ? applySchemaDefaults(child, childSchema) : structuredClone(child);
  }
  for (const [key, childSchema] of Object.entries(node.properties ?? {})) {
    if (out[key] === undefined && childSchema.default !== undefined) {
      out[key] = applySchemaDefaults(structuredClone(childSchema.default as Json), childSchema);
    }
  }
  return out;
}

/** A BloomDeployment whose spec is a defaulted deep copy (metadata and status are the same objects, not copies). */
export function withDefaults(bd: BloomDeploymentManifest | BloomDeployment): BloomDeployment {
  const specSchema = schema().properties?.spec as Schema;
  const spec = applySchemaDefaults(bd.spec ?? {}, specSchema) as BloomDeploymentSpec;
  return { ...bd, spec } as BloomDeployment;
}

/** A defaulted copy of a spec. */
export function specWithDefaults(spec: DeepPartial<BloomDeploymentSpec> | BloomDeploymentSpec): BloomDeploymentSpec {
  return applySchemaDefaults(spec, schema().properties?.spec as Schema) as BloomDeploymentSpec;
}
