import assert from 'node:assert/strict';
import { planRollout, type GroupSummary } from '../../operator/src/lifecycle/rollout.js';

const groups = (spec: string): GroupSummary[] =>
  // "R" ready up-to-date, "r" up-to-date not ready, "O" ready outdated, "o" outdated not ready; position = index
  [...spec].map((c, index) => ({ index, ready: c === 'R' || c === 'O', upToDate: c === 'R' || c === 'r' })).filter((_, i) => spec[i] !== '.');

const plan = (spec: string, replicas: number, maxSurge: number, maxUnavailable: number, busy: number[] = []) =>
  planRollout({ groups: groups(spec), replicas, maxSurge, maxUnavailable, busyIndices: new Set(busy) });

describe('planRollout (groups as the unit of scale and rollout)', () => {
  it('creates every group of a new deployment', () => {
    assert.deepEqual(plan('', 3, 1, 0), { create: [0, 1, 2], remove: [] });
  });

  it('does nothing when every group is ready and up to date', () => {
    assert.deepEqual(plan('RRR', 3, 1, 0), { create: [], remove: [] });
  });

  it('scales down by removing the highest indices first', () => {
    assert.deepEqual(plan('RRRR', 2, 1, 0), { create: [], remove: [3, 2] });
  });

  it('scales up into the lowest free indices, skipping indices whose pods are still terminating', () => {
    assert.deepEqual(plan('R.R', 4, 0, 1, [1]), { create: [3, 4], remove: [] });
  });

  it('surges first when maxUnavailable is 0: replicas=1 never drops to 0 ready groups', () => {
    assert.deepEqual(plan('O', 1, 1, 0), { create: [1], remove: [] });
    assert.deepEqual(plan('Or', 1, 1, 0), { create: [], remove: [] }, 'the old group stays until the new one is ready');
    assert.deepEqual(plan('OR', 1, 1, 0), { create: [], remove: [0] });
  });

  it('replaces in place within maxUnavailable when maxSurge is 0', () => {
    assert.deepEqual(plan('OOO', 3, 0, 1), { create: [3], remove: [2] });
    assert.deepEqual(plan('OO.r', 3, 0, 1), { create: [], remove: [] }, 'waits for the new group before taking another down');
    assert.deepEqual(plan('OO.R', 3, 0, 1), { create: [2], remove: [1] });
  });

  it('keeps replicas - maxUnavailable groups ready at every step (replicas=3, maxUnavailable=1)', () => {
    for (const state of ['OOO', 'OOr', 'OOR', 'ORR', 'OrR', 'RRr']) {
      const before = groups(state);
      const { remove } = plan(state, 3, 1, 1);
      const readyAfter = before.filter((g) => g.ready && !remove.includes(g.index)).length;
      assert.ok(readyAfter >= Math.min(2, before.filter((g) => g.ready).length), `${state}: ${readyAfter} ready after removing ${remove}`);
    }
  });

  it('removes outdated groups that are not ready at once (they serve nothing)', () => {
    assert.deepEqual(plan('oOO', 3, 1, 0), { create: [3, 4], remove: [0] });
  });

  it('never exceeds replicas + maxSurge groups', () => {
    const { create, remove } = plan('OOOO', 4, 2, 0);
    assert.equal(4 - remove.length + create.length, 6);
  });
});
