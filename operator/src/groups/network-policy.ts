/**
 * The NetworkPolicy of one group. A policy's peers cannot refer to the labels of the pod they let
 * traffic into, so one policy per deployment cannot say "from the pods of the same group": each group
 * gets its own, named like its Service. It selects every pod of the group (any epoch, so a terminating
 * incarnation stays isolated too) and lets in
 * - the rendezvous port and the ephemeral port range (NCCL's bootstrap and socket transport, gloo:
 *   their listening ports cannot be pinned, so the pods' net.ipv4.ip_local_port_range confines them)
 *   only from the pods of the group's current incarnation (deployment, group and epoch labels);
 * - the HTTP port from spec.network.httpFrom, the health port from spec.network.healthFrom.
 * Egress is not restricted. Loopback traffic inside a pod (a single-pod group's whole rendezvous) is
 * never subject to a NetworkPolicy.
 */
import type { KubernetesObject, V1LabelSelector, V1NetworkPolicyPeer, V1NetworkPolicyPort } from '@kubernetes/client-node';
import type { BloomDeployment, LabelSelector, NetworkPeer } from '../api/types.js';
import { commonLabels, groupEpochSelector, groupSelector } from './labels.js';
import { groupServiceName } from './names.js';
import { ownedMetadata } from './owner.js';

/**
 * A networking.k8s.io/v1 NetworkPolicy as it travels on the wire (client-node's V1NetworkPolicy names
 * an ingress rule's `from` `_from`, and only its typed API calls translate it; the operator reads and
 * writes policies as plain JSON, like its watch events).
 */
export interface NetworkPolicy extends KubernetesObject {
  spec?: {
    podSelector: V1LabelSelector;
    policyTypes?: string[];
    ingress?: Array<{ from?: V1NetworkPolicyPeer[]; ports?: V1NetworkPolicyPort[] }>;
  };
}

/** The generic-object coordinates of NetworkPolicies (the operator lists and writes them as plain JSON). */
export const NETWORK_POLICY_RESOURCE = { group: 'networking.k8s.io', version: 'v1', plural: 'networkpolicies' } as const;

/** A selector without empty members, the form the API server returns (empty maps and lists are omitted). */
function selector(s: LabelSelector): V1LabelSelector {
  const out: V1LabelSelector = {};
  if (s.matchLabels && Object.keys(s.matchLabels).length > 0) out.matchLabels = { ...s.matchLabels };
  if (s.matchExpressions && s.matchExpressions.length > 0) {
    out.matchExpressions = s.matchExpressions.map((e) => ({ key: e.key, operator: e.operator, ...(e.values && e.values.length > 0 ? { values: [...e.values] } : {}) }));
  }
  return out;
}

function peer(p: NetworkPeer): V1NetworkPolicyPeer {
  const out: V1NetworkPolicyPeer = {};
  if (p.podSelector) out.podSelector = selector(p.podSelector);
  if (p.namespaceSelector) out.namespaceSelector = selector(p.namespaceSelector);
  if (p.ipBlock) out.ipBlock = { cidr: p.ipBlock.cidr, ...(p.ipBlock.except && p.ipBlock.except.length > 0 ? { except: [...p.ipBlock.except] } : {}) };
  return out;
}

const tcp = (port: number, endPort?: number): V1NetworkPolicyPort => ({ protocol: 'TCP', port, ...(endPort === undefined ? {} : { endPort }) });

/** The policy of group `group` whose current incarnation is `epoch`; `bd` is defaulted. */
export function desiredGroupNetworkPolicy(bd: BloomDeployment, group: number, epoch: number): NetworkPolicy {
  const name = bd.metadata.name ?? '';
  const { worker, rendezvous, network } = bd.spec;
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: ownedMetadata(bd, groupServiceName(name, group), { ...commonLabels(name), ...groupSelector(name, group) }),
    spec: {
      podSelector: { matchLabels: groupSelector(name, group) },
      policyTypes: ['Ingress'],
      ingress: [
        { from: [{ podSelector: { matchLabels: groupEpochSelector(name, group, epoch) } }], ports: [tcp(rendezvous.port), tcp(rendezvous.ephemeralPorts.min, rendezvous.ephemeralPorts.max)] },
        { from: network.httpFrom.map(peer), ports: [tcp(worker.httpPort)] },
        { from: network.healthFrom.map(peer), ports: [tcp(worker.healthPort)] },
      ],
    },
  };
}
