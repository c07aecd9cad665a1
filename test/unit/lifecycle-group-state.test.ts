import assert from 'node:assert/strict';
import { GROUP_EVENTS, GROUP_STATES, PHASE_OF, TRANSITIONS, transition, type GroupState } from '../../operator/src/lifecycle/group-state.js';

const reachable = (from: GroupState) => {
  const seen = new Set<GroupState>([from]);
  for (let frontier = [from]; frontier.length > 0;) {
    frontier = frontier.flatMap((s) => Object.values(TRANSITIONS[s]).filter((t) => !seen.has(t))).filter((t) => !seen.has(t) && seen.add(t));
  }
  return seen;
};

describe('the group state machine (transition table)', () => {
  it('every transition leads to a known state, and every state has a phase', () => {
    for (const s of GROUP_STATES) {
      assert.ok(PHASE_OF[s], s);
      for (const [event, to] of Object.entries(TRANSITIONS[s])) {
        assert.ok((GROUP_EVENTS as readonly string[]).includes(event), `${s} --${event}`);
        assert.ok((GROUP_STATES as readonly string[]).includes(to!), `${s} --${event}--> ${to}`);
      }
    }
  });

  it('every state is reachable from Creating, and Ready is reachable from every state (nothing is terminal)', () => {
    assert.deepEqual([...reachable('Creating')].sort(), [...GROUP_STATES].sort());
    for (const s of GROUP_STATES) assert.ok(reachable(s).has('Ready'), `${s} can get back to Ready`);
  });

  it('failures reach BackingOff or Failed from every live state, and only a workload failure can exhaust the budget', () => {
    for (const s of ['Creating', 'Gated', 'Scheduling', 'Starting', 'Ready'] as const) {
      assert.equal(transition(s, 'WorkloadFailure'), 'BackingOff');
      assert.equal(transition(s, 'Disruption'), 'BackingOff');
      assert.equal(transition(s, 'BudgetExhausted'), 'Failed');
    }
  });

  it('refuses a transition the table does not have', () => {
    assert.throws(() => transition('Failed', 'AllReady'), /no transition from Failed on AllReady/);
    assert.throws(() => transition('Ready', 'Released'), /no transition from Ready on Released/);
  });
});
