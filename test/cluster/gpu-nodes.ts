import type { V1Node } from '@kubernetes/client-node';

/** Label of the NVLink domain a fake node belongs to (as NVIDIA's GPU feature discovery publishes it). */
export const NVLINK_DOMAIN_LABEL = 'nvidia.com/gpu.clique';
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';

export interface GpuNodeOptions {
  name: string;
  gpus: number;
  product: string;
  domain: string;
}

/** Nodes per NVLink domain of the fake cluster: multi-node NVLink cliques, so multi-pod groups have somewhere to go. */
export const NODES_PER_NVLINK_DOMAIN = 2;

/** A fake GPU node managed by kwok: 8 H100s by default, in the NVLink domain `domain`. */
export function gpuNode({ name, gpus, product, domain }: GpuNodeOptions): V1Node {
  const capacity = { cpu: '192', memory: '2Ti', pods: '110', 'ephemeral-storage': '20Ti', 'nvidia.com/gpu': String(gpus) };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { [KWOK_NODE_ANNOTATION]: 'fake' },
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'p5.48xlarge',
        'topology.kubernetes.io/zone': 'local-a',
        'nvidia.com/gpu.present': 'true',
        'nvidia.com/gpu.product': product,
        'nvidia.com/gpu.count': String(gpus),
        'nvidia.com/gpu.memory': '81559',
        [NVLINK_DOMAIN_LABEL]: domain,
        type: 'kwok',
      },
    },
    spec: {},
    status: { capacity, allocatable: capacity },
  };
}

export function gpuNodes(count: number, gpus = 8, product = 'NVIDIA-H100-80GB-HBM3', prefix = 'gpu-node'): V1Node[] {
  return Array.from({ length: count }, (_, i) => gpuNode({ name: `${prefix}-${i}`, gpus, product, domain: `nvl-${Math.floor(i / NODES_PER_NVLINK_DOMAIN)}` }));
}
