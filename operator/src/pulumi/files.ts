// Files of the repository the Pulumi component shares with the Helm chart:
// the RBAC rule list and the generated CRD. Read at deploy time (not bundled),
// so the chart, the CRD generator and Pulumi programs agree by construction.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';

/** A Kubernetes RBAC PolicyRule as the rule list writes it. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** charts/bloom-operator/files/rbac-rules.yaml, by section. */
export interface RbacRules {
  /** Granted in every namespace the operator reconciles. */
  watched: PolicyRule[];
  /** Cluster-scoped resources: only with cluster scope. */
  clusterScoped: PolicyRule[];
  /** The leader-election Lease, in the operator's own namespace. */
  leaderElection: PolicyRule[];
}

/** The package root: the nearest ancestor of this module that holds package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

export const RBAC_RULES_PATH = join('charts', 'bloom-operator', 'files', 'rbac-rules.yaml');
export const CRD_PATH = join('crds', 'inference.bloom.dev_bloomdeployments.yaml');

function isRuleList(v: unknown): v is PolicyRule[] {
  return (
    Array.isArray(v) &&
    v.every(
      (r) =>
        typeof r === 'object' &&
        r !== null &&
        ['apiGroups', 'resources', 'verbs'].every(
          (k) => Array.isArray((r as Record<string, unknown>)[k]) && ((r as Record<string, unknown>)[k] as unknown[]).every((s) => typeof s === 'string'),
        ),
    )
  );
}

/** Reads the shared rule list (default: the chart's files/rbac-rules.yaml). */
export function loadRbacRules(path = join(packageRoot(), RBAC_RULES_PATH)): RbacRules {
  const doc = yaml.load(readFileSync(path, 'utf8')) as Record<string, unknown> | null;
  const out: Partial<RbacRules> = {};
  for (const section of ['watched', 'clusterScoped', 'leaderElection'] as const) {
    const rules = doc?.[section];
    if (!isRuleList(rules)) throw new Error(`${path}: section "${section}" must be a list of {apiGroups, resources, verbs}`);
    out[section] = rules;
  }
  return out as RbacRules;
}

/** A parsed Kubernetes manifest. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}

/** Reads the generated BloomDeployment CRD (default: crds/ of the package). */
export function loadCrd(path = join(packageRoot(), CRD_PATH)): Manifest {
  const docs = yaml.loadAll(readFileSync(path, 'utf8')).filter((d) => d !== null && d !== undefined) as Manifest[];
  const crds = docs.filter((d) => d.kind === 'CustomResourceDefinition');
  if (crds.length !== 1) throw new Error(`${path}: expected one CustomResourceDefinition, found ${crds.length}`);
  return crds[0]!;
}
