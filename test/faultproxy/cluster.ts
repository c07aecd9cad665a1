import { join } from 'node:path';
import type { LocalCluster } from '../cluster/local-cluster.js';
import type { ClientName } from '../cluster/pki.js';
import { startFaultProxy, type FaultProxy } from './proxy.js';

/** A fault proxy in front of the local cluster's apiserver, authenticating upstream as `client`. */
export function startFaultProxyFor(cluster: LocalCluster, client: ClientName = 'admin'): Promise<FaultProxy> {
  return startFaultProxy({
    upstream: cluster.server,
    caFile: join(cluster.pkiDir, 'ca.crt'),
    certFile: join(cluster.pkiDir, `${client}.crt`),
    keyFile: join(cluster.pkiDir, `${client}.key`),
  });
}
