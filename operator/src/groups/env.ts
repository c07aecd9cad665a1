/** The env of one rank pod: exactly the contract of contract/env.json, then NCCL settings, then the user's env. */
import type { V1EnvVar } from '@kubernetes/client-node';
import { withDefaults } from '../api/defaults.js';
import type { BloomDeployment, WorkerEnvVar } from '../api/types.js';
import { masterAddress } from './names.js';

export interface RankParams {
  bd: BloomDeployment;
  group: number;
  rank: number;
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

/** The variables the operator owns, in contract order (torchrun first, then BLOOM_*). */
export function contractEnv({ bd, group, rank, epoch, clusterDomain }: RankParams): Record<string, string> {
  const { spec, metadata } = withDefaults(bd);
  const name = metadata.name ?? '';
  return {
    RANK: String(rank),
    WORLD_SIZE: String(spec.tensorParallelSize),
    LOCAL_RANK: '0',
    LOCAL_WORLD_SIZE: '1',
    MASTER_ADDR: masterAddress(name, group, metadata.namespace ?? 'default', clusterDomain),
    MASTER_PORT: String(spec.rendezvous.port),
    BLOOM_DEPLOYMENT: name,
    BLOOM_MODEL_DIR: modelDir(spec.model.mountPath, spec.model.path),
    BLOOM_TENSOR_PARALLEL_SIZE: String(spec.tensorParallelSize),
    BLOOM_GROUP: String(group),
    BLOOM_EPOCH: String(epoch),
    BLOOM_HTTP_PORT: String(spec.worker.httpPort),
    BLOOM_HEALTH_PORT: String(spec.worker.healthPort),
    BLOOM_RENDEZVOUS_TIMEOUT: String(spec.rendezvous.timeoutSeconds),
  };
}

/**
 * Env of the worker container of one rank. The user's spec.worker.env comes last; a user entry
 * with the name of an NCCL setting replaces it (admission already forbids reserved names).
 */
export function rankEnv(params: RankParams): V1EnvVar[] {
  const { spec } = withDefaults(params.bd);
  const userEnv = spec.worker.env ?? [];
  const userNames = new Set(userEnv.map((e) => e.name));
  const nccl = Object.entries(spec.rendezvous.nccl ?? {})
    .filter(([name]) => !userNames.has(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value }));
  const contract = Object.entries(contractEnv(params)).map(([name, value]) => ({ name, value }));
  return [...contract, ...nccl, ...userEnv.map(toV1EnvVar)];
}
