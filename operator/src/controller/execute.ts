/**
 * Runs a plan's writes with failure isolation: scopes (the client Service, each group, each
 * group's budget) run side by side; inside a scope, writes go in dependency order (Services and
 * records, then deletes, then creates, then gate removals and readiness gates), each stage in parallel, and a failed
 * stage stops only the rest of its own scope.
 */
import type { Action } from '../lifecycle/actions.js';

const STAGES: ReadonlyArray<ReadonlyArray<Action['kind']>> = [
  ['createService', 'applyService', 'patchRecord', 'deleteService', 'createPdb', 'applyPdb', 'deletePdb', 'createNetworkPolicy', 'applyNetworkPolicy', 'deleteNetworkPolicy', 'applyPodGroup'],
  ['deletePod', 'deletePodGroup'],
  ['createPod'],
  ['ungatePod', 'setGroupReady'],
];

export interface ExecutionResult {
  /** Each write that failed, with its error. */
  failures: Array<{ action: Action; error: unknown }>;
  /** Scopes with a failed write (their later writes were not attempted). */
  failedScopes: Set<string>;
}

export async function executeScoped(actions: readonly Action[], write: (action: Action) => Promise<void>): Promise<ExecutionResult> {
  const result: ExecutionResult = { failures: [], failedScopes: new Set() };
  const scopes = new Map<string, Action[]>();
  for (const a of actions) scopes.set(a.scope, [...(scopes.get(a.scope) ?? []), a]);
  await Promise.all([...scopes].map(async ([scope, own]) => {
    for (const kinds of STAGES) {
      const stage = own.filter((a) => kinds.includes(a.kind));
      const outcomes = await Promise.allSettled(stage.map(write));
      outcomes.forEach((o, i) => { if (o.status === 'rejected') result.failures.push({ action: stage[i]!, error: o.reason }); });
      if (outcomes.some((o) => o.status === 'rejected')) {
        result.failedScopes.add(scope);
        return;
      }
    }
  }));
  return result;
}
