/** The Services of a BloomDeployment: one headless Service per group (rendezvous DNS) and one client Service. */
import type { V1Service } from '@kubernetes/client-node';
import { withDefaults } from '../api/defaults.js';
import type { BloomDeployment } from '../api/types.js';
import { ANNOTATIONS, commonLabels, deploymentSelector, groupEpochSelector, groupSelector, leaderSelector } from './labels.js';
import { clientServiceName, groupServiceName } from './names.js';
import { ownedMetadata } from './owner.js';
import { PORT_NAMES } from './pod.js';

/**
 * Headless Service of one group: gives every pod the DNS name <hostname>.<service>.<ns>.svc.<domain>
 * (the pods' subdomain), published before the pods are ready so the rendezvous can start.
 * It selects only the current epoch, so MASTER_ADDR never resolves to a terminating pod 0 of an
 * older incarnation; the epoch annotation records which incarnation the Service belongs to.
 */
export function desiredGroupService(bd: BloomDeployment, group: number, epoch: number): V1Service {
  const defaulted = withDefaults(bd);
  const name = defaulted.metadata.name ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMetadata(defaulted, groupServiceName(name, group), { ...commonLabels(name), ...groupSelector(name, group) }, { [ANNOTATIONS.epoch]: String(epoch) }),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: groupEpochSelector(name, group, epoch),
      ports: [
        {
          name: PORT_NAMES.rendezvous,
          port: defaulted.spec.rendezvous.port,
          targetPort: defaulted.spec.rendezvous.port,
          protocol: 'TCP',
        },
      ],
    },
  };
}

/** ClusterIP Service clients call: endpoints are the Ready pods 0 (global rank 0 serves the API). */
export function desiredClientService(bd: BloomDeployment): V1Service {
  const defaulted = withDefaults(bd);
  const name = defaulted.metadata.name ?? '';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: ownedMetadata(defaulted, clientServiceName(name), { ...commonLabels(name), ...deploymentSelector(name) }),
    spec: {
      type: 'ClusterIP',
      selector: leaderSelector(name),
      ports: [
        {
          name: PORT_NAMES.http,
          port: defaulted.spec.worker.httpPort,
          targetPort: PORT_NAMES.http,
          protocol: 'TCP',
        },
      ],
    },
  };
}
