// Who this candidate is and where its Lease lives, from the pod's environment
// (the chart sets POD_NAME and POD_NAMESPACE through the downward API).
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/**
 * A unique candidate identity, as client-go builds it: the pod name (or
 * hostname) plus a random suffix, so a restarted container never mistakes
 * its predecessor's lease for its own.
 */
export function defaultIdentity(env: NodeJS.ProcessEnv = process.env): string {
  return `${env.POD_NAME || hostname()}_${randomUUID()}`;
}

/** The operator's own namespace: POD_NAMESPACE, else the in-cluster service account's, else "default". */
export function ownNamespace(env: NodeJS.ProcessEnv = process.env, saFile = SERVICE_ACCOUNT_NAMESPACE_FILE): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  if (existsSync(saFile)) {
    const ns = readFileSync(saFile, 'utf8').trim();
    if (ns) return ns;
  }
  return 'default';
}
