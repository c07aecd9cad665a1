// Leader election on a coordination.k8s.io/v1 Lease (see lease.ts).
export { LeaderElector, realClock, type Clock, type LeaderElectorOptions, type LeaderLogger } from './lease.js';
export { KubeLeaseClient, ConflictError, type LeaseClient, type StoredLease } from './lease-client.js';
export { decide, releaseRecord, validateTiming, type Decision, type LeaseRecord, type Observation } from './decision.js';
export { defaultIdentity, ownNamespace } from './identity.js';
