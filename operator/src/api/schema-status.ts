/** OpenAPI schema of BloomDeployment.status (written by the operator through the status subresource). */
import { DEPLOYMENT_PHASES, GROUP_PHASES } from './types.js';
import { array, int64, integer, object, string, type Schema } from './schema-builder.js';

const time = (description: string): Schema => string(description, { format: 'date-time' });

function conditionSchema(): Schema {
  return object(
    'Same shape as metav1.Condition.',
    {
      type: string('Condition type: Available, Progressing, Degraded, ReplicaFailure, Ready, Reconciling or Stalled.', { maxLength: 316 }),
      status: string('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
      reason: string('CamelCase reason of the last transition.', { maxLength: 1024 }),
      message: string('Human-readable details.', { maxLength: 32768 }),
      lastTransitionTime: time('When status last changed.'),
      observedGeneration: int64('metadata.generation the condition was computed from.', { minimum: 0 }),
    },
    { required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'] },
  );
}

function groupSchema(): Schema {
  return object(
    'State of one tensor-parallel group.',
    {
      index: integer('Group index (the g in <name>-g<index>).', { minimum: 0 }),
      phase: string(`Group phase: ${GROUP_PHASES.join(', ')}.`),
      epoch: int64('Incarnation of the group (BLOOM_EPOCH); a recreated group gets a new, larger value.', { minimum: 0 }),
      revision: string('Pod revision (hash of the pod-shaping spec) the group runs.'),
      readyPods: integer('Pods of the current incarnation that are Ready (every local rank ready).', { minimum: 0 }),
      readyRanks: integer('Rank processes in the Ready pods (readyPods x gpusPerPod).', { minimum: 0 }),
      restarts: integer('Times the group has been recreated after a workload failure (counted against failurePolicy.maxGroupRestarts).', { minimum: 0 }),
      disruptions: integer('Times the group has been recreated after a disruption (eviction, preemption, node loss, drain, placement stall); not counted against the restart budget.', { minimum: 0 }),
      recentRestartTimes: array('Restart times inside the current failurePolicy.restartWindowSeconds.', time('A restart time.'), {
        maxItems: 1000,
      }),
      nextRestartTime: time('The group is not recreated again before this time (back-off).'),
      lastFailure: object(
        'What last made the group be recreated.',
        {
          reason: string('CamelCase cause: RankFailed, StartupTimeout, ReadinessLost, NodeLost, ...'),
          class: string('Workload (a crash, a restart, a timeout: charged to the restart budget) or Disruption (the infrastructure took the group away: not charged).'),
          message: string('Details.'),
          pod: integer('Index of the pod (NODE_RANK) that failed, if one did.', { minimum: 0 }),
          time: time('When the failure was observed.'),
        },
        { required: ['reason', 'time'] },
      ),
      leaderAddress: string('MASTER_ADDR of the group: 127.0.0.1 for a single-pod group, else the DNS name of pod 0.'),
      lastTransitionTime: time('When phase last changed.'),
      message: string('Human-readable details of the phase.'),
    },
    { required: ['index'] },
  );
}

/**
 * The status defaults to {observedGeneration: 0}: the API server fills it in on every read until the
 * operator writes a status, so an object nobody has reconciled yet reads as "generation 1 not yet
 * observed". Without it a GitOps tool that applies and reads back a BloomDeployment sees no status at
 * all, and kstatus (Flux) calls an object without status or conditions Current (healthy).
 */
export const UNOBSERVED_STATUS = { observedGeneration: 0 } as const;

export function statusSchema(): Schema {
  return object('Observed state, written by the operator. Until the operator first writes it, it reads {observedGeneration: 0} (not yet observed).', {
    observedGeneration: int64('metadata.generation the status was computed from.'),
    replicas: integer('Groups that exist (any phase); the scale subresource reads it.', { minimum: 0 }),
    readyReplicas: integer('Groups whose every rank is Ready.', { minimum: 0 }),
    updatedReplicas: integer('Groups running updateRevision.', { minimum: 0 }),
    currentRevision: string('Pod revision most groups ran before the rollout in progress.'),
    updateRevision: string('Pod revision of the current spec.'),
    selector: string('Label selector of the pods 0 (one per group, holding global rank 0), for the scale subresource and HPA.'),
    podsPerGroup: integer('Pods per group (tensorParallelSize / gpusPerPod) of the current spec.', { minimum: 1 }),
    gpusPerPod: integer('GPUs, and rank processes, per pod of the current spec (spec.gpusPerPod or its default).', { minimum: 1 }),
    phase: string(`Summary: ${DEPLOYMENT_PHASES.join(', ')}.`),
    lastProgressTime: time('While a rollout or scale is in progress: when a group last became Ready or more groups came to run updateRevision (or the spec changed); spec.rollout.progressDeadlineSeconds counts from it. Absent once the deployment is complete or Failed.'),
    conditions: array('Available, Progressing, Degraded, ReplicaFailure (only while the API refuses a write), Ready, and the abnormal-true Reconciling and Stalled (present only while True).', conditionSchema(), {
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    }),
    groups: array('One entry per group, by index.', groupSchema(), {
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['index'],
    }),
  }, { default: { ...UNOBSERVED_STATUS } });
}
