/**
 * The env of one pod of a group: exactly the pod part of contract/env.json (the torchrun shape of
 * the group, its PET_* mirrors, the BLOOM_* values), then the scratch directory's variables (and in
 * pod 0 BLOOM_API_KEY_FILE), then NCCL settings, then the user's env. The
 * per-process RANK / LOCAL_RANK / LOCAL_WORLD_SIZE are the pod's launcher's to set.
 */
import type { V1EnvVar } from '@kubernetes/client-node';
import { withDefaults } from '../api/defaults.js';
import type { BloomDeployment, WorkerEnvVar } from '../api/types.js';
import { masterAddress } from './names.js';
import { securityEnv } from './security.js';
import { groupShape } from './shape.js';

export interface PodEnvParams {
  bd: BloomDeployment;
  group: number;
  /** Index of the pod in its group (NODE_RANK). */
  pod: number;
  epoch: number;
  /** Cluster DNS domain, usually cluster.local. */
  clusterDomain: string;
}

/** Directory holding the shard manifest: mountPath joined with the sub-path inside the volume. */
export function modelDir(mountPath: string, path: string): string {
  const base = mountPath.replace(/\/+$/, '');
  const sub = path.replace(/^\/+|\/+$/g, '');
  return sub === '' ? base || '/' : `${base}/${sub}`;
}

function toV1EnvVar(e: WorkerEnvVar): V1EnvVar {
  const out: V1EnvVar = { name: e.name };
  if (e.value !== undefined) out.value = e.value;
  if (e.valueFrom !== undefined) out.valueFrom = structuredClone(e.valueFrom);
  return out;
}

/** The variables the operator owns, in contract order (torchrun, PET_* mirrors, then BLOOM_*). */
export function contractEnv({ bd, group, pod, epoch, clusterDomain }: PodEnvParams): Record<string, string> {
  const { spec, metadata } = withDefaults(bd);
  const name = metadata.name ?? '';
  const shape = groupShape(spec);
  const torchrun = {
    NNODES: String(shape.pods),
    NODE_RANK: String(pod),
    NPROC_PER_NODE: String(shape.gpusPerPod),
    MASTER_ADDR: masterAddress(name, group, metadata.namespace ?? 'default', clusterDomain, shape.pods),
    MASTER_PORT: String(spec.rendezvous.port),
  };
  return {
    WORLD_SIZE: String(shape.ranks),
    ...torchrun,
    ...Object.fromEntries(Object.entries(torchrun).map(([key, value]) => [`PET_${key}`, value])),
    BLOOM_DEPLOYMENT: name,
    BLOOM_MODEL_DIR: modelDir(spec.model.mountPath, spec.model.path),
    BLOOM_TENSOR_PARALLEL_SIZE: String(spec.tensorParallelSize),
    BLOOM_GROUP: String(group),
    BLOOM_EPOCH: String(epoch),
    BLOOM_HTTP_PORT: String(spec.worker.httpPort),
    BLOOM_HEALTH_PORT: String(spec.worker.healthPort),
    BLOOM_RENDEZVOUS_TIMEOUT: String(spec.rendezvous.timeoutSeconds),
    BLOOM_TERMINATION_GRACE_SECONDS: String(spec.worker.terminationGracePeriodSeconds),
  };
}

/**
 * Env of the worker container of one pod. The user's spec.worker.env comes last; a user entry
 * with the name of an NCCL setting replaces it (admission already forbids reserved names).
 */
export function groupPodEnv(params: PodEnvParams): V1EnvVar[] {
  const { spec } = withDefaults(params.bd);
  const userEnv = spec.worker.env ?? [];
  const userNames = new Set(userEnv.map((e) => e.name));
  const nccl = Object.entries(spec.rendezvous.nccl ?? {})
    .filter(([name]) => !userNames.has(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value }));
  const operator = Object.entries({ ...contractEnv(params), ...securityEnv(spec, params.pod) }).map(([name, value]) => ({ name, value }));
  return [...operator, ...nccl, ...userEnv.map(toV1EnvVar)];
}
