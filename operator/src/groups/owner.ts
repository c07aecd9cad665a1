import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { API_GROUP_VERSION, KIND } from '../api/constants.js';
import type { BloomDeployment } from '../api/types.js';

/** Controller owner reference to the BloomDeployment: deletion cascades and the controller can map children to their owner. */
export function controllerOwnerReference(bd: BloomDeployment): V1OwnerReference {
  return {
    apiVersion: API_GROUP_VERSION,
    kind: KIND,
    name: bd.metadata.name ?? '',
    uid: bd.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Metadata of an object the BloomDeployment owns: its name, the deployment's namespace, labels and the owner reference. */
export function ownedMetadata(bd: BloomDeployment, name: string, labels: Record<string, string>, annotations?: Record<string, string>): V1ObjectMeta {
  return {
    name,
    namespace: bd.metadata.namespace,
    labels,
    ...(annotations ? { annotations } : {}),
    ownerReferences: [controllerOwnerReference(bd)],
  };
}
