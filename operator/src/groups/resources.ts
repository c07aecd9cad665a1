import type { V1ResourceRequirements } from '@kubernetes/client-node';
import type { BloomDeploymentSpec, Quantity } from '../api/types.js';

function quantities(map: Record<string, Quantity> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(map ?? {}).map(([name, value]) => [name, String(value)]));
}

/**
 * Resources of a pod's worker container (all its ranks): the user's, with limits[gpuResourceName] =
 * gpusPerPod (admission refuses a GPU count in spec.worker.resources that differs from it).
 */
export function podResources(spec: Pick<BloomDeploymentSpec, 'worker' | 'gpusPerPod'>): V1ResourceRequirements {
  const { worker } = spec;
  const limits = quantities(worker.resources?.limits);
  const requests = quantities(worker.resources?.requests);
  limits[worker.gpuResourceName] = String(spec.gpusPerPod);
  if (requests[worker.gpuResourceName] !== undefined) requests[worker.gpuResourceName] = String(spec.gpusPerPod);
  return Object.keys(requests).length > 0 ? { limits, requests } : { limits };
}
