import assert from 'node:assert/strict';
import type { BloomDeployment, BloomDeploymentStatus, Condition, DeploymentPhase, GroupPhase, GroupStatus } from '../../operator/src/api/types.js';
import { withDefaults } from '../../operator/src/api/defaults.js';
import { podRevision } from '../../operator/src/groups/revision.js';
import { planDeployment } from '../../operator/src/lifecycle/plan.js';
import { computeStatus, progressDeadlineAt, progressDeadlineEvent } from '../../operator/src/lifecycle/status.js';

const NOW = Date.parse('2024-05-01T12:00:00.000Z');
const NOW_ISO = '2024-05-01T12:00:00.000Z';
const EARLIER = '2024-05-01T11:00:00.000Z';
const NEW = 'rev-new';
const OLD = 'rev-old';

interface DeploymentOptions {
  replicas?: number;
  maxUnavailable?: number;
  progressDeadlineSeconds?: number;
  tensorParallelSize?: number;
  gpusPerPod?: number;
  generation?: number | undefined;
  name?: string;
  status?: BloomDeploymentStatus;
}

function deployment(options: DeploymentOptions = {}): BloomDeployment {
  const { replicas = 3, maxUnavailable, progressDeadlineSeconds, tensorParallelSize = 16, gpusPerPod, name = 'bloom', status } = options;
  const generation = 'generation' in options ? options.generation : 4;
  const rollout = { ...(maxUnavailable !== undefined ? { maxUnavailable } : {}), ...(progressDeadlineSeconds !== undefined ? { progressDeadlineSeconds } : {}) };
  return withDefaults({
    apiVersion: 'inference.bloom.dev/v1alpha1',
    kind: 'BloomDeployment',
    metadata: { name, namespace: 'serving', uid: '0f3c6a4e-uid', ...(generation !== undefined ? { generation } : {}) },
    spec: {
      replicas,
      tensorParallelSize,
      ...(gpusPerPod !== undefined ? { gpusPerPod } : {}),
      ...(Object.keys(rollout).length > 0 ? { rollout } : {}),
      model: { source: { persistentVolumeClaim: { claimName: 'shards' } }, path: 'bloom-176b' },
      worker: { image: 'bloom-worker:v1' },
    },
    ...(status ? { status } : {}),
  });
}

function group(index: number, phase: GroupPhase, revision = NEW, extra: Partial<GroupStatus> = {}): GroupStatus {
  const readyPods = phase === 'Ready' ? 2 : 0;
  return { index, phase, epoch: 1, revision, readyPods, readyRanks: readyPods * 8, restarts: 0, ...extra };
}

/** Indices of the groups at the new revision: what plan.ts passes for groups on schedulable nodes. */
const atNew = (groups: GroupStatus[]) => new Set(groups.filter((g) => g.revision === NEW).map((g) => g.index));

function compute(bd: BloomDeployment, groups: GroupStatus[], upToDate: ReadonlySet<number> = atNew(groups), clientService = true, now = NOW): BloomDeploymentStatus {
  const input = { bd, groups, upToDate, revision: NEW, now, clientService };
  return computeStatus(input);
}

function cond(status: BloomDeploymentStatus, type: string): Condition {
  const c = status.conditions?.find((x) => x.type === type);
  assert.ok(c, `condition ${type} missing`);
  return c;
}

type Brief = [status: Condition['status'], reason: string, message: string];
const brief = (c: Condition): Brief => [c.status, c.reason, c.message];

/** Types of the conditions while in progress, once complete, once stalled. */
const RUNNING = ['Available', 'Progressing', 'Degraded', 'Ready', 'Reconciling'];
const COMPLETE = ['Available', 'Progressing', 'Degraded', 'Ready'];
const STALLED = ['Available', 'Progressing', 'Degraded', 'Ready', 'Stalled'];

describe('computeStatus (BloomDeployment status from group plans)', () => {
  describe('phase, counts and conditions', () => {
    interface Case {
      name: string;
      replicas?: number;
      maxUnavailable?: number;
      groups: GroupStatus[];
      upToDate?: number[];
      phase: DeploymentPhase;
      counts: [replicas: number, ready: number, updated: number];
      available: Brief;
      /** Progressing; while in progress Ready (False) and Reconciling (True) carry its reason and message. */
      progressing: Brief;
      degraded: Brief;
      /** Ready when complete; Stalled when stalled (Ready False with the same reason and message). */
      ready?: Brief;
      stalled?: Brief;
    }
    const healthy: Brief = ['False', 'AllGroupsHealthy', 'no group is failed or restarting'];
    const cases: Case[] = [
      {
        name: 'Pending: no group exists yet',
        groups: [],
        phase: 'Pending',
        counts: [0, 0, 0],
        available: ['False', 'TooFewGroupsReady', '0 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'Scaling', 'scaling from 0 to 3 group(s); 0/3 group(s) ready, 0 at revision rev-new, 0 exist'],
        degraded: healthy,
      },
      {
        name: 'Progressing (GroupsStarting): groups exist, none ready',
        groups: [group(0, 'Pending'), group(1, 'Starting'), group(2, 'Pending')],
        phase: 'Progressing',
        counts: [3, 0, 3],
        available: ['False', 'TooFewGroupsReady', '0 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'GroupsStarting', 'groups 0, 1, 2 starting (2 Pending, 1 Starting); 0/3 group(s) ready, 3 at revision rev-new, 3 exist'],
        degraded: healthy,
      },
      {
        name: 'Progressing (GroupsStarting): some groups ready, the starting one is named',
        groups: [group(0, 'Ready'), group(1, 'Starting'), group(2, 'Ready')],
        phase: 'Progressing',
        counts: [3, 2, 3],
        available: ['False', 'TooFewGroupsReady', '2 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'GroupsStarting', 'group 1 starting (0 Pending, 1 Starting); 2/3 group(s) ready, 3 at revision rev-new, 3 exist'],
        degraded: healthy,
      },
      {
        name: 'Progressing but Available within maxUnavailable',
        maxUnavailable: 2,
        groups: [group(0, 'Ready'), group(1, 'Starting'), group(2, 'Pending')],
        phase: 'Progressing',
        counts: [3, 1, 3],
        available: ['True', 'MinimumGroupsReady', '1 of 3 group(s) ready (minimum 1)'],
        progressing: ['True', 'GroupsStarting', 'groups 1, 2 starting (1 Pending, 1 Starting); 1/3 group(s) ready, 3 at revision rev-new, 3 exist'],
        degraded: healthy,
      },
      {
        name: 'not Available with no ready group even when maxUnavailable >= replicas',
        maxUnavailable: 5,
        groups: [group(0, 'Starting'), group(1, 'Starting'), group(2, 'Starting')],
        phase: 'Progressing',
        counts: [3, 0, 3],
        available: ['False', 'TooFewGroupsReady', '0 of 3 group(s) ready (minimum 0)'],
        progressing: ['True', 'GroupsStarting', 'groups 0, 1, 2 starting (0 Pending, 3 Starting); 0/3 group(s) ready, 3 at revision rev-new, 3 exist'],
        degraded: healthy,
      },
      {
        name: 'Progressing (Scaling): fewer groups than replicas',
        groups: [group(0, 'Ready'), group(1, 'Ready')],
        phase: 'Progressing',
        counts: [2, 2, 2],
        available: ['False', 'TooFewGroupsReady', '2 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'Scaling', 'scaling from 2 to 3 group(s); 2/3 group(s) ready, 2 at revision rev-new, 2 exist'],
        degraded: healthy,
      },
      {
        name: 'Progressing (Scaling): more groups than replicas (scale down)',
        replicas: 2,
        groups: [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Ready')],
        phase: 'Progressing',
        counts: [3, 3, 3],
        available: ['True', 'MinimumGroupsReady', '3 of 2 group(s) ready (minimum 2)'],
        progressing: ['True', 'Scaling', 'scaling from 3 to 2 group(s); 3/2 group(s) ready, 3 at revision rev-new, 3 exist'],
        degraded: healthy,
      },
      {
        name: 'Available: every group ready at the revision; Ready, no Reconciling or Stalled',
        groups: [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Ready')],
        phase: 'Available',
        counts: [3, 3, 3],
        available: ['True', 'MinimumGroupsReady', '3 of 3 group(s) ready (minimum 3)'],
        progressing: ['False', 'Complete', '3 group(s) ready at revision rev-new'],
        degraded: healthy,
        ready: ['True', 'Complete', '3 group(s) ready at revision rev-new'],
      },
      {
        name: 'Available: replicas 0 and no groups',
        replicas: 0,
        groups: [],
        phase: 'Available',
        counts: [0, 0, 0],
        available: ['True', 'MinimumGroupsReady', '0 of 0 group(s) ready (minimum 0)'],
        progressing: ['False', 'Complete', '0 group(s) ready at revision rev-new'],
        degraded: healthy,
        ready: ['True', 'Complete', '0 group(s) ready at revision rev-new'],
      },
      {
        name: 'a ready group at the revision that is not up to date is being replaced, not "starting" (cordoned node)',
        groups: [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Ready')],
        upToDate: [0, 1],
        phase: 'Progressing',
        counts: [3, 3, 2],
        available: ['True', 'MinimumGroupsReady', '3 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'ReplacingGroups', 'group 2 to be replaced (a node of theirs is unschedulable or draining); 3/3 group(s) ready, 2 at revision rev-new, 3 exist'],
        degraded: healthy,
      },
      {
        name: 'Progressing (RollingOut): an outdated group remains',
        groups: [group(0, 'Ready', OLD), group(1, 'Ready'), group(2, 'Ready')],
        phase: 'Progressing',
        counts: [3, 3, 2],
        available: ['True', 'MinimumGroupsReady', '3 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'RollingOut', 'rolling out revision rev-new, 1 group(s) at older revisions left; 3/3 group(s) ready, 2 at revision rev-new, 3 exist'],
        degraded: healthy,
      },
      {
        name: 'RollingOut names the other causes too (a new group starting), not a scale: a surge is none',
        groups: [group(0, 'Ready', OLD), group(1, 'Ready'), group(2, 'Ready'), group(3, 'Pending')],
        phase: 'Progressing',
        counts: [4, 3, 3],
        available: ['True', 'MinimumGroupsReady', '3 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'RollingOut', 'rolling out revision rev-new, 1 group(s) at older revisions left; group 3 starting (1 Pending, 0 Starting); 3/3 group(s) ready, 3 at revision rev-new, 4 exist'],
        degraded: healthy,
      },
      {
        name: 'Degraded: a Failed group (updatedReplicas excludes it); Progressing says failed, not starting',
        groups: [group(0, 'Ready'), group(1, 'Failed', NEW, { message: 'gave up after 3 restarts in 600s' }), group(2, 'Ready')],
        phase: 'Degraded',
        counts: [3, 2, 2],
        available: ['False', 'TooFewGroupsReady', '2 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'GroupsFailed', 'group 1 failed; 2/3 group(s) ready, 2 at revision rev-new, 3 exist'],
        degraded: ['True', 'GroupFailed', 'group 1 failed: gave up after 3 restarts in 600s'],
      },
      {
        name: 'Degraded: a Failed group without a message falls back to its last failure',
        groups: [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Failed', NEW, { lastFailure: { reason: 'StartupTimeout', message: 'not ready after 1800s', time: EARLIER } })],
        phase: 'Degraded',
        counts: [3, 2, 2],
        available: ['False', 'TooFewGroupsReady', '2 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'GroupsFailed', 'group 2 failed; 2/3 group(s) ready, 2 at revision rev-new, 3 exist'],
        degraded: ['True', 'GroupFailed', 'group 2 failed: not ready after 1800s'],
      },
      {
        name: 'Degraded: a Restarting group, with its last failure; Progressing says restarting',
        maxUnavailable: 1,
        groups: [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Restarting', NEW, { epoch: 2, lastFailure: { reason: 'RankFailed', message: 'rank 11 exited with code 1', pod: 1, time: EARLIER } })],
        phase: 'Degraded',
        counts: [3, 2, 3],
        available: ['True', 'MinimumGroupsReady', '2 of 3 group(s) ready (minimum 2)'],
        progressing: ['True', 'GroupsRestarting', 'group 2 restarting; 2/3 group(s) ready, 3 at revision rev-new, 3 exist'],
        degraded: ['True', 'GroupRestarting', 'group 2 restarting: RankFailed: rank 11 exited with code 1'],
      },
      {
        name: 'Degraded: a Restarting group without a recorded failure',
        groups: [group(0, 'Restarting'), group(1, 'Ready'), group(2, 'Ready')],
        phase: 'Degraded',
        counts: [3, 2, 3],
        available: ['False', 'TooFewGroupsReady', '2 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'GroupsRestarting', 'group 0 restarting; 2/3 group(s) ready, 3 at revision rev-new, 3 exist'],
        degraded: ['True', 'GroupRestarting', 'group 0 restarting'],
      },
      {
        name: 'Degraded: failed groups are listed before restarting ones, reason GroupFailed',
        groups: [group(0, 'Restarting', NEW, { lastFailure: { reason: 'NodeLost', message: 'node gpu-3 gone', time: EARLIER } }), group(1, 'Ready'), group(2, 'Failed', NEW, { message: 'gave up' })],
        phase: 'Degraded',
        counts: [3, 1, 2],
        available: ['False', 'TooFewGroupsReady', '1 of 3 group(s) ready (minimum 3)'],
        progressing: ['True', 'GroupsRestarting', 'group 0 restarting; group 2 failed; 1/3 group(s) ready, 2 at revision rev-new, 3 exist'],
        degraded: ['True', 'GroupFailed', 'group 2 failed: gave up; group 0 restarting: NodeLost: node gpu-3 gone'],
      },
      {
        name: 'Failed: every group failed; Progressing False, Stalled',
        groups: [group(0, 'Failed', NEW, { message: 'a' }), group(1, 'Failed', NEW, { message: 'b' }), group(2, 'Failed', NEW, { message: 'c' })],
        phase: 'Failed',
        counts: [3, 0, 0],
        available: ['False', 'TooFewGroupsReady', '0 of 3 group(s) ready (minimum 3)'],
        progressing: ['False', 'AllGroupsFailed', 'all 3 group(s) failed, none is starting: group 0 failed: a; group 1 failed: b; group 2 failed: c'],
        degraded: ['True', 'GroupFailed', 'group 0 failed: a; group 1 failed: b; group 2 failed: c'],
        stalled: ['True', 'AllGroupsFailed', 'all 3 group(s) failed, none is starting: group 0 failed: a; group 1 failed: b; group 2 failed: c'],
      },
      {
        name: 'Failed: every existing group failed, even with fewer groups than replicas',
        groups: [group(0, 'Failed', NEW, { message: 'gave up' })],
        phase: 'Failed',
        counts: [1, 0, 0],
        available: ['False', 'TooFewGroupsReady', '0 of 3 group(s) ready (minimum 3)'],
        progressing: ['False', 'AllGroupsFailed', 'all 1 group(s) failed, none is starting: group 0 failed: gave up'],
        degraded: ['True', 'GroupFailed', 'group 0 failed: gave up'],
        stalled: ['True', 'AllGroupsFailed', 'all 1 group(s) failed, none is starting: group 0 failed: gave up'],
      },
      {
        name: 'Degraded, not Failed, when replicas is 0 and a failed group remains',
        replicas: 0,
        groups: [group(0, 'Failed', NEW, { message: 'gave up' })],
        phase: 'Degraded',
        counts: [1, 0, 0],
        available: ['True', 'MinimumGroupsReady', '0 of 0 group(s) ready (minimum 0)'],
        progressing: ['True', 'Scaling', 'scaling from 1 to 0 group(s); group 0 failed; 0/0 group(s) ready, 0 at revision rev-new, 1 exist'],
        degraded: ['True', 'GroupFailed', 'group 0 failed: gave up'],
      },
    ];

    for (const c of cases) {
      it(c.name, () => {
        const bd = deployment({ ...(c.replicas !== undefined ? { replicas: c.replicas } : {}), ...(c.maxUnavailable !== undefined ? { maxUnavailable: c.maxUnavailable } : {}) });
        const status = compute(bd, c.groups, c.upToDate ? new Set(c.upToDate) : atNew(c.groups));
        assert.equal(status.phase, c.phase);
        assert.deepEqual([status.replicas, status.readyReplicas, status.updatedReplicas], c.counts, '[replicas, readyReplicas, updatedReplicas]');
        assert.deepEqual(status.conditions?.map((x) => x.type), c.ready ? COMPLETE : c.stalled ? STALLED : RUNNING);
        assert.deepEqual(brief(cond(status, 'Available')), c.available, 'Available');
        assert.deepEqual(brief(cond(status, 'Progressing')), c.progressing, 'Progressing');
        assert.deepEqual(brief(cond(status, 'Degraded')), c.degraded, 'Degraded');
        if (c.ready) {
          assert.deepEqual(brief(cond(status, 'Ready')), c.ready, 'Ready');
          assert.equal(status.lastProgressTime, undefined, 'no progress clock once complete');
        } else if (c.stalled) {
          assert.deepEqual(brief(cond(status, 'Stalled')), c.stalled, 'Stalled');
          assert.deepEqual(brief(cond(status, 'Ready')), ['False', c.stalled[1], c.stalled[2]], 'Ready says why it is stalled');
          assert.equal(status.lastProgressTime, undefined, 'no progress clock once Failed');
        } else {
          assert.equal(c.progressing[0], 'True');
          assert.deepEqual(brief(cond(status, 'Reconciling')), c.progressing, 'Reconciling: what Progressing says');
          assert.deepEqual(brief(cond(status, 'Ready')), ['False', c.progressing[1], c.progressing[2]], 'Ready: False, with the same reason');
          assert.equal(status.lastProgressTime, NOW_ISO, 'the progress clock starts now');
        }
      });
    }

    it('is neither Available nor complete without the client Service, however many groups are ready', () => {
      const bd = deployment({ status: { currentRevision: OLD } });
      const s = compute(bd, [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Ready')], undefined, false);
      assert.equal(s.phase, 'Progressing');
      assert.deepEqual([s.replicas, s.readyReplicas, s.updatedReplicas], [3, 3, 3]);
      assert.deepEqual(brief(cond(s, 'Available')), ['False', 'NoClientService', 'the client Service bloom is missing or not controlled by this BloomDeployment']);
      const waiting: Brief = ['True', 'WaitingForClientService', 'waiting for the client Service bloom (missing or not controlled by this BloomDeployment); 3/3 group(s) ready, 3 at revision rev-new, 3 exist'];
      assert.deepEqual(brief(cond(s, 'Progressing')), waiting, 'not "groups starting": none is');
      assert.deepEqual(brief(cond(s, 'Reconciling')), waiting);
      assert.deepEqual(brief(cond(s, 'Ready')), ['False', waiting[1], waiting[2]]);
      assert.deepEqual(brief(cond(s, 'Degraded')), ['False', 'AllGroupsHealthy', 'no group is failed or restarting']);
      assert.equal(s.currentRevision, OLD, 'the rollout is not complete');
    });

    it('keeps the Available transition time when the client Service goes while Available was already False', () => {
      const conditions: Condition[] = [{ type: 'Available', status: 'False', reason: 'TooFewGroupsReady', message: 'before', lastTransitionTime: EARLIER }];
      const s = compute(deployment({ status: { conditions } }), [group(0, 'Ready')], undefined, false);
      assert.equal(cond(s, 'Available').lastTransitionTime, EARLIER);
      assert.equal(cond(s, 'Available').reason, 'NoClientService');
    });

    it('counts only groups in upToDate as updated, and never a Failed one', () => {
      const groups = [group(0, 'Ready'), group(1, 'Starting'), group(2, 'Failed'), group(3, 'Ready', OLD)];
      assert.equal(compute(deployment(), groups, new Set([0, 1, 2])).updatedReplicas, 2);
      assert.equal(compute(deployment(), groups, new Set([0, 1, 2, 3])).updatedReplicas, 3, 'upToDate is trusted, the group revision is not rechecked');
      assert.equal(compute(deployment(), groups, new Set()).updatedReplicas, 0);
    });
  });

  describe('lastTransitionTime of conditions', () => {
    const previousConditions = (available: Condition['status'], progressing: Condition['status'], degraded: Condition['status'], ready: Condition['status'] = 'False'): Condition[] => [
      { type: 'Available', status: available, reason: 'Before', message: 'before', lastTransitionTime: EARLIER, observedGeneration: 3 },
      { type: 'Progressing', status: progressing, reason: 'Before', message: 'before', lastTransitionTime: EARLIER, observedGeneration: 3 },
      { type: 'Degraded', status: degraded, reason: 'Before', message: 'before', lastTransitionTime: EARLIER, observedGeneration: 3 },
      { type: 'Ready', status: ready, reason: 'Before', message: 'before', lastTransitionTime: EARLIER, observedGeneration: 3 },
      { type: 'Reconciling', status: 'True', reason: 'Before', message: 'before', lastTransitionTime: EARLIER, observedGeneration: 3 },
    ];
    const times = (s: BloomDeploymentStatus) => s.conditions?.map((c) => [c.type, c.lastTransitionTime]);

    it('are now when there is no previous status', () => {
      const s = compute(deployment(), [group(0, 'Ready')]);
      assert.deepEqual(times(s), RUNNING.map((t) => [t, NOW_ISO]));
    });

    it('are kept while the status does not change, even when reason and message do', () => {
      const bd = deployment({ status: { conditions: previousConditions('False', 'True', 'False') } });
      const s = compute(bd, [group(0, 'Ready'), group(1, 'Starting')]);
      assert.deepEqual(times(s), RUNNING.map((t) => [t, EARLIER]));
      assert.equal(cond(s, 'Progressing').reason, 'Scaling', 'reason is recomputed');
      assert.equal(cond(s, 'Reconciling').reason, 'Scaling', 'reason is recomputed');
      assert.equal(cond(s, 'Available').observedGeneration, 4, 'observedGeneration is recomputed');
    });

    it('move to now when the status changes; Reconciling goes once complete', () => {
      const bd = deployment({ status: { conditions: previousConditions('False', 'True', 'False') } });
      const s = compute(bd, [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Ready')]);
      assert.deepEqual(times(s), [['Available', NOW_ISO], ['Progressing', NOW_ISO], ['Degraded', EARLIER], ['Ready', NOW_ISO]]);
      assert.deepEqual(s.conditions?.map((c) => c.status), ['True', 'False', 'False', 'True']);
    });

    it('move to now from Unknown, and for a condition the previous status lacked', () => {
      const bd = deployment({ status: { conditions: previousConditions('Unknown', 'True', 'False').slice(0, 2) } });
      const s = compute(bd, [group(0, 'Restarting'), group(1, 'Starting')]);
      assert.deepEqual(times(s), [['Available', NOW_ISO], ['Progressing', EARLIER], ['Degraded', NOW_ISO], ['Ready', NOW_ISO], ['Reconciling', NOW_ISO]]);
    });
  });

  describe('per-group lastTransitionTime', () => {
    it('is kept while phase and epoch are unchanged, and moves otherwise', () => {
      const previous = [
        group(0, 'Ready', NEW, { lastTransitionTime: EARLIER }),
        group(1, 'Starting', NEW, { lastTransitionTime: EARLIER }),
        group(2, 'Ready', NEW, { lastTransitionTime: EARLIER }),
        group(4, 'Ready', NEW, { lastTransitionTime: EARLIER }),
      ];
      const bd = deployment({ replicas: 4, status: { groups: previous } });
      const s = compute(bd, [
        group(0, 'Ready'), // same phase, same epoch
        group(1, 'Ready'), // phase changed
        group(2, 'Ready', NEW, { epoch: 2 }), // restarted and ready again: epoch changed
        group(3, 'Pending'), // new group
      ]);
      assert.deepEqual(s.groups?.map((g) => [g.index, g.lastTransitionTime]), [[0, EARLIER], [1, NOW_ISO], [2, NOW_ISO], [3, NOW_ISO]]);
    });

    it('is kept across a revision or ready-pod change of the same phase and epoch', () => {
      const bd = deployment({ status: { groups: [group(0, 'Starting', OLD, { lastTransitionTime: EARLIER, readyPods: 0 })] } });
      const s = compute(bd, [group(0, 'Starting', NEW, { readyPods: 1, readyRanks: 8 })]);
      assert.equal(s.groups?.[0]?.lastTransitionTime, EARLIER);
    });

    it('is now when the previous group had no time', () => {
      const bd = deployment({ status: { groups: [group(0, 'Ready')] } });
      assert.equal(compute(bd, [group(0, 'Ready')]).groups?.[0]?.lastTransitionTime, NOW_ISO);
    });

    it('ignores a time set on the input group: it comes from the previous status or now', () => {
      const s = compute(deployment(), [group(0, 'Ready', NEW, { lastTransitionTime: EARLIER })]);
      assert.equal(s.groups?.[0]?.lastTransitionTime, NOW_ISO);
    });

    it('sorts groups by index and keeps their other fields; inputs are not mutated', () => {
      const input = [
        group(2, 'Starting', NEW, { leaderAddress: 'bloom-g2-0.bloom-g2.serving.svc.cluster.local' }),
        group(0, 'Ready', NEW, { restarts: 3, recentRestartTimes: [EARLIER] }),
        group(1, 'Restarting', NEW, { epoch: 5, nextRestartTime: NOW_ISO }),
      ];
      const snapshot = structuredClone(input);
      const bd = deployment({ status: { groups: [group(0, 'Ready', NEW, { lastTransitionTime: EARLIER })] } });
      const statusBefore = structuredClone(bd.status);
      const s = compute(bd, input);
      assert.deepEqual(s.groups, [
        { ...snapshot[1]!, lastTransitionTime: EARLIER },
        { ...snapshot[2]!, lastTransitionTime: NOW_ISO },
        { ...snapshot[0]!, lastTransitionTime: NOW_ISO },
      ]);
      assert.deepEqual(input, snapshot, 'input groups unchanged');
      assert.deepEqual(bd.status, statusBefore, 'previous status unchanged');
    });
  });

  describe('revisions', () => {
    it('updateRevision is always the revision passed in', () => {
      const bd = deployment({ status: { currentRevision: OLD, updateRevision: OLD } });
      assert.equal(compute(bd, [group(0, 'Ready', OLD)], new Set()).updateRevision, NEW);
    });

    it('currentRevision is the revision at once for a new deployment (no previous status, no outdated group)', () => {
      assert.equal(compute(deployment(), []).currentRevision, NEW);
      assert.equal(compute(deployment(), [group(0, 'Starting')]).currentRevision, NEW);
    });

    it('currentRevision stays the old revision through a rollout and moves when it completes', () => {
      const bd = (groups?: GroupStatus[]) => deployment({ status: { currentRevision: OLD, updateRevision: NEW, ...(groups ? { groups } : {}) } });
      const steps: Array<[string, GroupStatus[], string, DeploymentPhase]> = [
        ['surge: a new group starts', [group(0, 'Ready', OLD), group(1, 'Ready', OLD), group(2, 'Ready', OLD), group(3, 'Starting')], OLD, 'Progressing'],
        ['the new group is ready', [group(0, 'Ready', OLD), group(1, 'Ready', OLD), group(2, 'Ready', OLD), group(3, 'Ready')], OLD, 'Progressing'],
        ['old groups removed, new ones starting', [group(3, 'Ready'), group(4, 'Starting'), group(5, 'Pending')], OLD, 'Progressing'],
        ['complete', [group(3, 'Ready'), group(4, 'Ready'), group(5, 'Ready')], NEW, 'Available'],
      ];
      for (const [step, groups, current, phase] of steps) {
        const s = compute(bd(), groups);
        assert.equal(s.currentRevision, current, step);
        assert.equal(s.phase, phase, step);
      }
    });

    it('currentRevision is the outdated revision while outdated groups remain, whatever the previous status said', () => {
      const bd = deployment({ status: { currentRevision: 'rev-older', updateRevision: OLD } });
      assert.equal(compute(bd, [group(0, 'Ready', OLD), group(1, 'Starting')]).currentRevision, OLD);
    });

    it('currentRevision is the most common outdated revision', () => {
      const groups = [group(0, 'Ready', 'rev-a'), group(1, 'Ready', 'rev-b'), group(2, 'Ready', 'rev-b'), group(3, 'Ready'), group(4, 'Ready'), group(5, 'Ready')];
      const s = compute(deployment({ status: { currentRevision: 'rev-a' } }), groups);
      assert.equal(s.currentRevision, 'rev-b', 'outnumbered by new groups, rev-b is still the current one');
      assert.equal(s.updatedReplicas, 3);
      assert.equal(cond(s, 'Progressing').reason, 'RollingOut');
    });

    it('a tie between outdated revisions goes to the lesser name (deterministic)', () => {
      assert.equal(compute(deployment(), [group(0, 'Ready', 'rev-b'), group(1, 'Ready', 'rev-a'), group(2, 'Ready')]).currentRevision, 'rev-a');
      assert.equal(compute(deployment(), [group(0, 'Ready', 'rev-a'), group(1, 'Ready', 'rev-b'), group(2, 'Ready')]).currentRevision, 'rev-a');
    });

    it('currentRevision stays the previous one when no outdated group exists but the rollout is not complete', () => {
      const bd = deployment({ status: { currentRevision: OLD } });
      assert.equal(compute(bd, [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Failed')]).currentRevision, OLD);
      assert.equal(compute(bd, [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Ready')], new Set([0, 1])).currentRevision, OLD);
    });
  });

  describe('generation, selector and shape', () => {
    it('sets observedGeneration on the status and on every condition', () => {
      const s = compute(deployment({ generation: 7 }), [group(0, 'Ready')]);
      assert.equal(s.observedGeneration, 7);
      assert.deepEqual(s.conditions?.map((c) => c.observedGeneration), [7, 7, 7, 7, 7]);
    });

    it('omits observedGeneration when the object has no generation', () => {
      const s = compute(deployment({ generation: undefined }), [group(0, 'Ready')]);
      assert.equal('observedGeneration' in s, false);
      assert.deepEqual(s.conditions?.map((c) => 'observedGeneration' in c), [false, false, false, false, false]);
    });

    it('selector selects pod 0 of every group of the deployment (scale subresource)', () => {
      assert.equal(compute(deployment(), []).selector, 'inference.bloom.dev/deployment=bloom,inference.bloom.dev/pod=0');
      assert.equal(compute(deployment({ name: 'bloomz-7b1' }), []).selector, 'inference.bloom.dev/deployment=bloomz-7b1,inference.bloom.dev/pod=0');
    });

    const shapes: Array<[tensorParallelSize: number, gpusPerPod: number | undefined, pods: number, gpus: number]> = [
      [16, undefined, 2, 8],
      [16, 4, 4, 4],
      [8, undefined, 1, 8],
      [4, undefined, 1, 4],
      [8, 2, 4, 2],
    ];
    for (const [tp, gpusPerPod, pods, gpus] of shapes) {
      it(`podsPerGroup ${pods}, gpusPerPod ${gpus} for tensorParallelSize ${tp}, gpusPerPod ${gpusPerPod ?? 'defaulted'}`, () => {
        const s = compute(deployment({ tensorParallelSize: tp, ...(gpusPerPod !== undefined ? { gpusPerPod } : {}) }), []);
        assert.equal(s.podsPerGroup, pods);
        assert.equal(s.gpusPerPod, gpus);
      });
    }
  });

  describe('progress deadline (spec.rollout.progressDeadlineSeconds, fake clock)', () => {
    const at = (seconds: number) => NOW + seconds * 1000;
    const iso = (seconds: number) => new Date(at(seconds)).toISOString();
    interface Step {
      t: number;
      groups: GroupStatus[];
      generation?: number;
      /** Expected: Progressing status and reason, lastProgressTime (seconds), the deadline's wake-up (seconds), a Warning event. */
      progressing: [Condition['status'], string];
      since?: number;
      wakeAt?: number;
      event?: boolean;
    }
    /** Reconciles in order, each one reading the status the one before wrote (as the controller does), checking each step. */
    function run(start: BloomDeployment, steps: Step[]): BloomDeploymentStatus[] {
      let previous = start.status;
      const written: BloomDeploymentStatus[] = [];
      for (const step of steps) {
        const what = `t=${step.t}s`;
        const bd: BloomDeployment = { ...start, metadata: { ...start.metadata, generation: step.generation ?? start.metadata.generation }, ...(previous ? { status: previous } : {}) };
        const status = compute(bd, step.groups, atNew(step.groups), true, at(step.t));
        const progressing = cond(status, 'Progressing');
        assert.deepEqual([progressing.status, progressing.reason], step.progressing, `${what}: Progressing`);
        assert.equal(status.lastProgressTime, step.since === undefined ? undefined : iso(step.since), `${what}: lastProgressTime`);
        assert.equal(progressDeadlineAt(bd, status), step.wakeAt === undefined ? undefined : at(step.wakeAt), `${what}: wake-up at the deadline`);
        const event = progressDeadlineEvent(previous?.conditions, status);
        assert.deepEqual(event, step.event ? { type: 'Warning', reason: 'ProgressDeadlineExceeded', message: progressing.message } : undefined, `${what}: event`);
        const stalled = progressing.reason === 'ProgressDeadlineExceeded' || progressing.reason === 'AllGroupsFailed';
        assert.deepEqual(status.conditions?.map((c) => c.type), progressing.reason === 'Complete' ? COMPLETE : stalled ? STALLED : RUNNING, `${what}: condition types`);
        if (stalled) {
          assert.deepEqual(brief(cond(status, 'Stalled')), ['True', progressing.reason, progressing.message], `${what}: Stalled`);
          assert.deepEqual(brief(cond(status, 'Ready')), ['False', progressing.reason, progressing.message], `${what}: Ready`);
        }
        written.push(status);
        previous = status;
      }
      return written;
    }
    /** A deployment complete at the old revision (generation 4), whose spec now has a new image (generation 5). */
    const rolledOut = (options: DeploymentOptions = {}) => {
      const before = deployment({ replicas: 1, generation: 4, ...options });
      const status = computeStatus({ bd: before, groups: [group(0, 'Ready', OLD)], upToDate: new Set([0]), revision: OLD, now: at(-3600), clientService: true });
      assert.equal(cond(status, 'Ready').status, 'True');
      return deployment({ replicas: 1, generation: 5, ...options, status });
    };

    it('a rollout whose new group never gets ready: ProgressDeadlineExceeded and Stalled at the deadline, one Warning, then progress again', () => {
      const statuses = run(rolledOut({ progressDeadlineSeconds: 60 }), [
        { t: 0, groups: [group(0, 'Ready', OLD), group(1, 'Pending')], progressing: ['True', 'RollingOut'], since: 0, wakeAt: 60 },
        { t: 30, groups: [group(0, 'Ready', OLD), group(1, 'Starting')], progressing: ['True', 'RollingOut'], since: 0, wakeAt: 60 },
        { t: 59.999, groups: [group(0, 'Ready', OLD), group(1, 'Starting')], progressing: ['True', 'RollingOut'], since: 0, wakeAt: 60 },
        { t: 60, groups: [group(0, 'Ready', OLD), group(1, 'Starting')], progressing: ['False', 'ProgressDeadlineExceeded'], since: 0, event: true },
        { t: 120, groups: [group(0, 'Ready', OLD), group(1, 'Starting')], progressing: ['False', 'ProgressDeadlineExceeded'], since: 0 },
        { t: 130, groups: [group(0, 'Ready', OLD), group(1, 'Ready')], progressing: ['True', 'RollingOut'], since: 130, wakeAt: 190 },
        { t: 131, groups: [group(1, 'Ready')], progressing: ['False', 'Complete'] },
      ]);
      const exceeded = statuses[3]!;
      assert.equal(cond(exceeded, 'Progressing').message,
        'no progress for 60s (spec.rollout.progressDeadlineSeconds) since 2024-05-01T12:00:00.000Z: rolling out revision rev-new, 1 group(s) at older revisions left; group 1 starting (0 Pending, 1 Starting); 1/1 group(s) ready, 1 at revision rev-new, 2 exist');
      assert.equal(cond(exceeded, 'Available').status, 'True', 'the old group still serves');
      assert.equal(exceeded.phase, 'Progressing');
      assert.deepEqual(statuses[4], exceeded, 'past the deadline nothing changes: no status write');
      assert.equal(cond(statuses[5]!, 'Progressing').lastTransitionTime, iso(130), 'Progressing went True again');
    });

    it('the default deadline is 600 s, and it also runs when a complete deployment stops being complete (a group restarting)', () => {
      const start = compute(deployment({ replicas: 2 }), [group(0, 'Ready'), group(1, 'Ready')], undefined, true, at(-3600));
      assert.equal(start.lastProgressTime, undefined);
      run(deployment({ replicas: 2, status: start }), [
        { t: 0, groups: [group(0, 'Ready'), group(1, 'Restarting', NEW, { epoch: 2 })], progressing: ['True', 'GroupsRestarting'], since: 0, wakeAt: 600 },
        { t: 599, groups: [group(0, 'Ready'), group(1, 'Restarting', NEW, { epoch: 2 })], progressing: ['True', 'GroupsRestarting'], since: 0, wakeAt: 600 },
        { t: 600, groups: [group(0, 'Ready'), group(1, 'Restarting', NEW, { epoch: 2 })], progressing: ['False', 'ProgressDeadlineExceeded'], since: 0, event: true },
        { t: 700, groups: [group(0, 'Ready'), group(1, 'Ready', NEW, { epoch: 2 })], progressing: ['False', 'Complete'] },
      ]);
    });

    it('a Failed deployment runs no clock (it is Stalled for its own reason); revived, its clock starts afresh', () => {
      run(deployment({ replicas: 1, progressDeadlineSeconds: 60 }), [
        { t: 0, groups: [group(0, 'Starting')], progressing: ['True', 'GroupsStarting'], since: 0, wakeAt: 60 },
        { t: 10, groups: [group(0, 'Failed', NEW, { message: 'gave up' })], progressing: ['False', 'AllGroupsFailed'] },
        { t: 1000, groups: [group(0, 'Failed', NEW, { message: 'gave up' })], progressing: ['False', 'AllGroupsFailed'] },
        { t: 2000, groups: [group(0, 'Pending', NEW, { epoch: 2 })], progressing: ['True', 'GroupsStarting'], since: 2000, wakeAt: 2060 },
      ]);
    });

    it('a new spec (generation) restarts the clock, even with no new group: a rollout past its deadline retargeted', () => {
      run(rolledOut({ progressDeadlineSeconds: 60 }), [
        { t: 0, groups: [group(0, 'Ready', OLD), group(1, 'Starting')], progressing: ['True', 'RollingOut'], since: 0, wakeAt: 60 },
        { t: 100, groups: [group(0, 'Ready', OLD), group(1, 'Starting')], progressing: ['False', 'ProgressDeadlineExceeded'], since: 0, event: true },
        { t: 110, generation: 6, groups: [group(0, 'Ready', OLD), group(1, 'Starting')], progressing: ['True', 'RollingOut'], since: 110, wakeAt: 170 },
      ]);
    });

    describe('what counts as progress', () => {
      const cases: Array<[name: string, before: GroupStatus[], after: GroupStatus[], progress: boolean]> = [
        ['a group became Ready', [group(0, 'Ready'), group(1, 'Starting'), group(2, 'Starting')], [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Starting')], true],
        ['a group is Ready at a new epoch (it restarted in between)', [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Starting')], [group(0, 'Ready'), group(1, 'Ready', NEW, { epoch: 2 }), group(2, 'Starting')], true],
        ['a group became Ready while another stopped being Ready', [group(0, 'Ready'), group(1, 'Starting'), group(2, 'Starting')], [group(0, 'Restarting', NEW, { epoch: 2 }), group(1, 'Ready'), group(2, 'Starting')], true],
        ['more groups run the current revision', [group(0, 'Ready', OLD), group(1, 'Ready', OLD), group(2, 'Ready', OLD)], [group(0, 'Ready', OLD), group(1, 'Ready', OLD), group(2, 'Ready', OLD), group(3, 'Pending')], true],
        ['a Failed group is retried (it counts as up to date again)', [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Failed')], [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Pending', NEW, { epoch: 2 })], true],
        ['not: a group went from Pending to Starting', [group(0, 'Ready'), group(1, 'Pending'), group(2, 'Pending')], [group(0, 'Ready'), group(1, 'Starting'), group(2, 'Pending')], false],
        ['not: a Ready group is restarting', [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Starting')], [group(0, 'Ready'), group(1, 'Restarting', NEW, { epoch: 2 }), group(2, 'Starting')], false],
        ['not: an old group was removed', [group(0, 'Ready', OLD), group(1, 'Ready'), group(2, 'Ready'), group(3, 'Starting')], [group(1, 'Ready'), group(2, 'Ready'), group(3, 'Starting')], false],
        ['not: a group failed', [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Starting')], [group(0, 'Ready'), group(1, 'Ready'), group(2, 'Failed')], false],
      ];
      for (const [name, before, after, progress] of cases) {
        it(name, () => {
          const first = compute(deployment(), before, undefined, true, at(0));
          assert.equal(first.lastProgressTime, iso(0));
          const second = compute(deployment({ status: first }), after, undefined, true, at(59));
          assert.equal(second.lastProgressTime, iso(progress ? 59 : 0));
        });
      }

      it('an unreadable lastProgressTime starts the clock now', () => {
        const first = compute(deployment(), [group(0, 'Starting')], undefined, true, at(0));
        const s = compute(deployment({ status: { ...first, lastProgressTime: 'yesterday' } }), [group(0, 'Starting')], undefined, true, at(5000));
        assert.equal(s.lastProgressTime, iso(5000));
        assert.equal(cond(s, 'Progressing').status, 'True');
      });
    });

    it('changing progressDeadlineSeconds changes no pod revision (nothing rolls)', () => {
      const spec = deployment().spec;
      assert.equal(podRevision({ ...spec, rollout: { ...spec.rollout, progressDeadlineSeconds: 5 } }), podRevision(spec));
      assert.equal(spec.rollout.progressDeadlineSeconds, 600, 'the default');
    });

    describe('planDeployment: wakes at the deadline, emits the Warning once', () => {
      const fresh = () => withDefaults({
        apiVersion: 'inference.bloom.dev/v1alpha1', kind: 'BloomDeployment',
        metadata: { name: 'bloom', namespace: 'serving', uid: 'uid-1', generation: 2 },
        spec: { replicas: 2, tensorParallelSize: 8, rollout: { progressDeadlineSeconds: 30 }, model: { source: { hostPath: { path: '/m' } } }, worker: { image: 'w:1' } },
      });
      const plan = (bd: BloomDeployment, now: number) => planDeployment({ bd, services: [], pods: [], pdbs: [], networkPolicies: [], nodes: undefined, now, clusterDomain: 'cluster.local' });

      it('a reconcile that starts the clock asks to look again at the deadline', () => {
        const p = plan(fresh(), at(0));
        assert.equal(p.status.lastProgressTime, iso(0));
        assert.equal(p.wakeAt, at(30));
        assert.ok(!p.events.some((e) => e.reason === 'ProgressDeadlineExceeded'));
      });

      it('the reconcile at the deadline reports it with one Warning; the next one does not repeat it', () => {
        const bd = fresh();
        const first = plan(bd, at(0));
        const late = plan({ ...bd, status: first.status }, at(30));
        assert.equal(cond(late.status, 'Progressing').reason, 'ProgressDeadlineExceeded');
        assert.deepEqual(late.events.filter((e) => e.reason === 'ProgressDeadlineExceeded').map((e) => [e.type, e.message]), [['Warning', cond(late.status, 'Progressing').message]]);
        assert.equal(late.wakeAt, undefined, 'no wake-up for a deadline already reported');
        const again = plan({ ...bd, status: late.status }, at(60));
        assert.ok(!again.events.some((e) => e.reason === 'ProgressDeadlineExceeded'));
      });
    });
  });
});
