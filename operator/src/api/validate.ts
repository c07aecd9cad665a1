/**
 * Validates a BloomDeployment the way the API server does at admission, without one: defaulting,
 * then the OpenAPI checks of the schema (type, required, enum, bounds, patterns, list-map keys,
 * unknown fields as with strict field validation), then the TypeScript twin of every CEL rule.
 * Error strings mimic the API server's: "<field path>: <what is wrong>".
 */
import { schema, applySchemaDefaults } from './defaults.js';
import type { CelRule, Schema } from './schema-builder.js';

export interface FieldError {
  /** Path of the offending field, e.g. spec.rendezvous.port ("" for rules on the whole object). */
  field: string;
  message: string;
}

type Value = unknown;

function typeOf(value: Value): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(value: Value, node: Schema): boolean {
  if (node['x-kubernetes-int-or-string']) return typeOf(value) === 'integer' || typeof value === 'string';
  if (!node.type) return true;
  const actual = typeOf(value);
  return actual === node.type || (node.type === 'number' && actual === 'integer');
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function checkScalar(value: Value, node: Schema, path: string, errors: FieldError[]): void {
  const add = (message: string): number => errors.push({ field: path, message: `${path}: ${message}` });
  if (node.enum && !node.enum.includes(value as never)) {
    add(`Unsupported value: ${JSON.stringify(value)}: supported values: ${node.enum.map((v) => JSON.stringify(v)).join(', ')}`);
  }
  if (typeof value === 'number') {
    if (node.minimum !== undefined && value < node.minimum) add(`Invalid value: ${value}: ${path} in body should be greater than or equal to ${node.minimum}`);
    if (node.maximum !== undefined && value > node.maximum) add(`Invalid value: ${value}: ${path} in body should be less than or equal to ${node.maximum}`);
  }
  if (typeof value === 'string') {
    if (node.minLength !== undefined && value.length < node.minLength) add(`Invalid value: "${value}": ${path} in body should be at least ${node.minLength} chars long`);
    if (node.maxLength !== undefined && value.length > node.maxLength) add(`Too long: may not be more than ${node.maxLength} bytes`);
    if (node.pattern !== undefined && !new RegExp(node.pattern).test(value)) add(`Invalid value: "${value}": ${path} in body should match '${node.pattern}'`);
  }
}

function checkArray(value: Value[], node: Schema, path: string, errors: FieldError[]): void {
  if (node.minItems !== undefined && value.length < node.minItems) errors.push({ field: path, message: `${path}: Invalid value: ${value.length}: ${path} in body should have at least ${node.minItems} items` });
  if (node.maxItems !== undefined && value.length > node.maxItems) errors.push({ field: path, message: `${path}: Too many: ${value.length}: must have at most ${node.maxItems} items` });
  const keys = node['x-kubernetes-list-map-keys'];
  if (node['x-kubernetes-list-type'] === 'map' && keys) {
    const seen = new Set<string>();
    value.forEach((item, i) => {
      const key = JSON.stringify(keys.map((k) => (item as Record<string, unknown>)?.[k]));
      if (seen.has(key)) errors.push({ field: `${path}[${i}]`, message: `${path}[${i}]: Duplicate value: ${key}` });
      seen.add(key);
    });
  }
  value.forEach((item, i) => node.items && validateNode(item, node.items, `${path}[${i}]`, errors));
}

function checkObject(value: Record<string, unknown>, node: Schema, path: string, errors: FieldError[]): void {
  for (const key of node.required ?? []) {
    if (value[key] === undefined) errors.push({ field: join(path, key), message: `${join(path, key)}: Required value` });
  }
  const count = Object.keys(value).length;
  if (node.maxProperties !== undefined && count > node.maxProperties) errors.push({ field: path, message: `${path}: Too many: ${count}: must have at most ${node.maxProperties} items` });
  for (const [key, child] of Object.entries(value)) {
    const childSchema = node.properties?.[key] ?? node.additionalProperties;
    if (childSchema) validateNode(child, childSchema, join(path, key), errors);
    else if (!node['x-kubernetes-preserve-unknown-fields'] && node.properties) errors.push({ field: join(path, key), message: `${join(path, key)}: field not declared in schema` });
  }
}

function checkRules(value: Value, rules: CelRule[], path: string, errors: FieldError[]): void {
  for (const r of rules) {
    const check = r.check as (self: Value) => boolean;
    let ok: boolean;
    try {
      ok = check(value);
    } catch {
      ok = false;
    }
    if (!ok) {
      const field = r.fieldPath ? `${path}${r.fieldPath}` : path;
      errors.push({ field, message: `${field === '' ? '<nil>' : field}: Invalid value: ${r.message}` });
    }
  }
}

function validateNode(value: Value, node: Schema, path: string, errors: FieldError[]): void {
  if (value === undefined) return;
  if (!matchesType(value, node)) {
    const expected = node['x-kubernetes-int-or-string'] ? 'integer or string' : node.type;
    errors.push({ field: path, message: `${path}: Invalid value: "${typeOf(value)}": ${path} in body must be of type ${expected}` });
    return;
  }
  const before = errors.length;
  if (Array.isArray(value)) checkArray(value, node, path, errors);
  else if (typeof value === 'object' && value !== null) checkObject(value as Record<string, unknown>, node, path, errors);
  else checkScalar(value, node, path, errors);
  // Like an API server whose CEL rules see only well-typed values: a rule runs on a node without schema errors.
  if (errors.length === before && node['x-kubernetes-validations']) checkRules(value, node['x-kubernetes-validations'], path, errors);
}

/** Admission errors of a BloomDeployment manifest (empty when valid). */
export function validateBloomDeployment(manifest: unknown): FieldError[] {
  const root = schema();
  const defaulted = applySchemaDefaults(manifest, root);
  const errors: FieldError[] = [];
  validateNode(defaulted, root, '', errors);
  return errors;
}
