import type { V1OwnerReference } from '@kubernetes/client-node';
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
