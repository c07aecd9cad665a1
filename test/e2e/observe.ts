/** Ground truth for availability checks: which groups have every pod Ready right now, from the pods themselves. */
import { Watch, type V1Pod } from '@kubernetes/client-node';
import { LABELS } from '../../operator/src/groups/labels.js';
import type { E2eContext } from './fixture.js';

const ready = (p: V1Pod) => !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

export function readyGroupCount(pods: readonly V1Pod[], podsPerGroup: number): number {
  const perIncarnation = new Map<string, number>();
  for (const p of pods.filter(ready)) {
    const k = `${p.metadata?.labels?.[LABELS.group]}/${p.metadata?.labels?.[LABELS.epoch]}`;
    perIncarnation.set(k, (perIncarnation.get(k) ?? 0) + 1);
  }
  return [...perIncarnation.values()].filter((n) => n === podsPerGroup).length;
}

/** Epochs present per group index among all pods (terminating ones included). */
export function epochsByGroup(pods: readonly V1Pod[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const p of pods) {
    const g = p.metadata?.labels?.[LABELS.group] ?? '?';
    out.set(g, (out.get(g) ?? new Set()).add(p.metadata?.labels?.[LABELS.epoch] ?? '?'));
  }
  return out;
}

/**
 * Replays every change of the deployment's pods, in order, from a watch: `check` sees the pod
 * set after each event (every state the API server went through), until `until` settles.
 */
export async function watchInvariant(ctx: E2eContext, bd: string, check: (pods: V1Pod[]) => string | undefined, until: Promise<unknown>): Promise<{ samples: number; violations: string[] }> {
  const pods = new Map<string, V1Pod>();
  const violations: string[] = [];
  let samples = 0;
  const selector = `${LABELS.deployment}=${bd}`;
  const observe = () => {
    samples++;
    const problem = check([...pods.values()]);
    if (problem) violations.push(problem);
  };
  let resourceVersion = '';
  let done = false;
  void until.finally(() => { done = true; });
  while (!done) {
    try {
      if (!resourceVersion) {
        const list = await ctx.core.listNamespacedPod({ namespace: ctx.namespace, labelSelector: selector });
        pods.clear();
        for (const p of list.items) pods.set(p.metadata!.uid!, p);
        resourceVersion = list.metadata?.resourceVersion ?? '';
        observe();
      }
      await new Promise<void>((resolve) => {
        let request: AbortController | undefined;
        const stop = setInterval(() => { if (done) { request?.abort(); resolve(); } }, 100);
        void new Watch(ctx.kc).watch(`/api/v1/namespaces/${ctx.namespace}/pods`, { labelSelector: selector, resourceVersion, allowWatchBookmarks: true },
          (type: string, obj: V1Pod & { code?: number }) => {
            if (type === 'ERROR') { resourceVersion = ''; return; }
            resourceVersion = obj.metadata?.resourceVersion ?? resourceVersion;
            if (type === 'BOOKMARK') return;
            if (type === 'DELETED') pods.delete(obj.metadata!.uid!);
            else pods.set(obj.metadata!.uid!, obj);
            observe();
          },
          () => { clearInterval(stop); resolve(); }).then((r) => { request = r; }, () => { clearInterval(stop); resolve(); });
      });
    } catch {
      await new Promise((r) => setTimeout(r, 200)); // the API server may be restarting
    }
  }
  return { samples, violations };
}
