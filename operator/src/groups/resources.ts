import type { V1ResourceRequirements } from '@kubernetes/client-node';
import { DEFAULTS } from '../api/defaults-table.js';
import type { Quantity, WorkerSpec } from '../api/types.js';

function quantities(map: Record<string, Quantity> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(map ?? {}).map(([name, value]) => [name, String(value)]));
}

/**
 * Resources of a rank's worker container: the user's, plus limits[gpuResourceName] = 1 unless the
 * user set that GPU resource (in limits, or in requests only: extended resources need limits).
 */
export function rankResources(worker: WorkerSpec): V1ResourceRequirements {
  const limits = quantities(worker.resources?.limits);
  const requests = quantities(worker.resources?.requests);
  const gpu = worker.gpuResourceName;
  limits[gpu] ??= requests[gpu] ?? String(DEFAULTS.worker.gpusPerRank);
  return Object.keys(requests).length > 0 ? { limits, requests } : { limits };
}
