/**
 * withDefaults applies the OpenAPI `default`s of the CRD schema, the way the API server does
 * (structural defaulting: a missing property with a default gets it, then defaulting recurses into
 * every present property, including the defaulted ones). Because it walks the same schema the CRD
 * is generated from, the controller and the API server cannot disagree on a default.
 */
import { DEFAULTS } from './defaults-table.js';
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

/** Default gpusPerPod of a tensor-parallel size: one pod per 8-GPU node. */
export function defaultGpusPerPod(tensorParallelSize: number): number {
  return Math.min(tensorParallelSize, DEFAULTS.maxGpusPerPod);
}

/**
 * Defaults that depend on other fields, which an OpenAPI `default` cannot express: gpusPerPod
 * from tensorParallelSize, and /dev/shm sized for the ranks of a pod. Applied after the schema's.
 */
function withDerivedDefaults(spec: BloomDeploymentSpec): BloomDeploymentSpec {
  spec.gpusPerPod ??= defaultGpusPerPod(spec.tensorParallelSize);
  if (spec.worker) spec.worker.shmSize ??= `${DEFAULTS.worker.shmPerRankGi * spec.gpusPerPod}Gi`;
  return spec;
}

/** A defaulted copy of a spec. */
export function specWithDefaults(spec: DeepPartial<BloomDeploymentSpec> | BloomDeploymentSpec): BloomDeploymentSpec {
  return withDerivedDefaults(applySchemaDefaults(spec, schema().properties?.spec as Schema) as BloomDeploymentSpec);
}

/** A BloomDeployment whose spec is a defaulted deep copy (metadata and status are the same objects, not copies). */
export function withDefaults(bd: BloomDeploymentManifest | BloomDeployment): BloomDeployment {
  return { ...bd, spec: specWithDefaults(bd.spec ?? {}) } as BloomDeployment;
}
