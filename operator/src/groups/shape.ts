/** The shape of a tensor-parallel group: pods of gpusPerPod GPUs, one rank process per GPU. */
import type { BloomDeploymentSpec } from '../api/types.js';

export interface GroupShape {
  /** Ranks in the group (WORLD_SIZE). */
  ranks: number;
  /** GPUs, and rank processes, per pod (NPROC_PER_NODE). */
  gpusPerPod: number;
  /** Pods in the group (NNODES). */
  pods: number;
}

/** The shape of a defaulted spec's groups. */
export function groupShape(spec: Pick<BloomDeploymentSpec, 'tensorParallelSize' | 'gpusPerPod'>): GroupShape {
  return { ranks: spec.tensorParallelSize, gpusPerPod: spec.gpusPerPod, pods: spec.tensorParallelSize / spec.gpusPerPod };
}
