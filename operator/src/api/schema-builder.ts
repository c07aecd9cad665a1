/**
 * A tiny builder for structural OpenAPI v3 schemas (the subset a CRD accepts).
 *
 * Every CEL rule carries, next to its CEL text, a TypeScript predicate with the same meaning
 * (`check`), so that validate.ts can evaluate the rules without an API server. The CRD emitter
 * (crd.ts) drops `check`.
 */

/** A JSON value as found in a manifest. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface CelRule {
  /** CEL expression; `self` is the value at this node. */
  rule: string;
  /** Message the API server returns; it names the field. */
  message: string;
  /** Path (relative to this node) the API server reports the error on. */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  /**
   * Same meaning as `rule`, in TypeScript, for validate.ts. Receives the value at this node after
   * defaulting and after the OpenAPI checks passed (so it may trust the node's declared shape).
   * Typed `never` so each rule can declare the parameter type it expects.
   */
  check: (self: never) => boolean;
}

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema;
  items?: Schema;
  enum?: Json[];
  default?: Json;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
  anyOf?: Schema[];
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-preserve-unknown-fields'?: true;
  'x-kubernetes-validations'?: CelRule[];
}

type Extra = Omit<Schema, 'type' | 'properties' | 'items' | 'additionalProperties' | 'description'>;

export function object(description: string, properties: Record<string, Schema>, extra: Extra = {}): Schema {
  return { type: 'object', description, properties, ...extra };
}

export function string(description: string, extra: Extra = {}): Schema {
  return { type: 'string', description, ...extra };
}

export function integer(description: string, extra: Extra = {}): Schema {
  return { type: 'integer', description, format: 'int32', ...extra };
}

export function int64(description: string, extra: Extra = {}): Schema {
  return { type: 'integer', description, format: 'int64', ...extra };
}

export function boolean(description: string, extra: Extra = {}): Schema {
  return { type: 'boolean', description, ...extra };
}

export function array(description: string, items: Schema, extra: Extra = {}): Schema {
  return { type: 'array', description, items, ...extra };
}

export function stringMap(description: string, extra: Extra = {}, values: Schema = { type: 'string' }): Schema {
  return { type: 'object', description, additionalProperties: values, ...extra };
}

/** Kubernetes resource.Quantity: an integer or a string such as "16Gi" or "500m". */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

export function quantity(description: string, extra: Extra = {}): Schema {
  return {
    description,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: QUANTITY_PATTERN,
    'x-kubernetes-int-or-string': true,
    ...extra,
  };
}

/**
 * An optional object section defaulted as a whole: its default is the object of its properties'
 * defaults (recursively), so that CEL rules on the section see every defaulted field, also when the
 * API server validates the default itself.
 */
export function defaultedSection(section: Schema): Schema {
  return { ...section, default: collectDefaults(section) };
}

function collectDefaults(node: Schema): Json {
  const out: { [key: string]: Json } = {};
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    if (child.default !== undefined) out[key] = child.default;
    else if (child.type === 'object' && child.properties && Object.values(child.properties).some((c) => c.default !== undefined)) {
      out[key] = collectDefaults(child);
    }
  }
  return out;
}

export function rule(
  rule: string,
  message: string,
  check: CelRule['check'],
  options: Pick<CelRule, 'fieldPath' | 'reason'> = {},
): CelRule {
  return { rule, message, check, ...options };
}
