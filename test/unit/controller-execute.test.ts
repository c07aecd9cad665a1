import assert from 'node:assert/strict';
import type { Action } from '../../operator/src/lifecycle/actions.js';
import { executeScoped } from '../../operator/src/controller/execute.js';

const pod = (scope: string, name: string): Action => ({ kind: 'createPod', pod: { metadata: { name } }, scope });
const del = (scope: string, name: string): Action => ({ kind: 'deletePod', name, uid: name, force: false, scope });
const record = (scope: string, name: string): Action => ({ kind: 'patchRecord', name, resourceVersion: '1', annotations: {}, scope });
const pdb = (scope: string, name: string): Action => ({ kind: 'createPdb', pdb: { metadata: { name } }, scope });
const nameOf = (a: Action) => (a.kind === 'createPod' ? a.pod.metadata!.name! : a.kind === 'createPdb' ? a.pdb.metadata!.name! : 'name' in a ? a.name : '');

describe('executeScoped (failure isolation of a plan\'s writes)', () => {
  it('runs a scope in dependency order: records, then deletes, then creates', async () => {
    const order: string[] = [];
    await executeScoped([pod('group/0', 'new'), del('group/0', 'old'), record('group/0', 'svc')], async (a) => { order.push(a.kind); });
    assert.deepEqual(order, ['patchRecord', 'deletePod', 'createPod']);
  });

  it('a failed write stops the rest of its scope only; other scopes and the budget go on', async () => {
    const done: string[] = [];
    const result = await executeScoped(
      [record('group/0', 'g0'), pod('group/0', 'g0-pod'), record('group/1', 'g1'), pod('group/1', 'g1-pod'), pdb('budget/0', 'g0')],
      async (a) => {
        if (nameOf(a) === 'g1') throw Object.assign(new Error('refused'), { code: 403 });
        done.push(nameOf(a));
      },
    );
    assert.deepEqual(done.sort(), ['g0', 'g0', 'g0-pod']);
    assert.deepEqual([...result.failedScopes], ['group/1']);
    assert.equal(result.failures.length, 1);
    assert.equal(nameOf(result.failures[0]!.action), 'g1');
  });

  it('reports every failure of a stage, not just the first', async () => {
    const result = await executeScoped([pod('group/0', 'a'), pod('group/0', 'b')], async () => { throw new Error('quota'); });
    assert.equal(result.failures.length, 2);
  });
});
