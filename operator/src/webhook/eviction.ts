/**
 * The eviction webhook's decision, pure. A group's PodDisruptionBudget asks for all its pods, so
 * the eviction API refuses a pod of a serving group (429) and `kubectl drain` retries; the operator
 * must learn that someone wants the pod gone, and a refused eviction leaves no trace in the API.
 * This webhook sees every eviction first: it never decides (always allowed: the budget does), it
 * only names the pod to mark, so the operator replaces the group surge-first and deletes the old
 * pods itself, and the drain completes within the rollout budget.
 */
export interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: {
    uid: string;
    kind?: { group?: string; version?: string; kind?: string };
    resource?: { group?: string; version?: string; resource?: string };
    subResource?: string;
    name?: string;
    namespace?: string;
    operation?: string;
    dryRun?: boolean;
  };
}

export interface EvictionDecision {
  review: { apiVersion: string; kind: 'AdmissionReview'; response: { uid: string; allowed: true } };
  /** The pod whose eviction was asked for (not for a dry run). */
  pod?: { namespace: string; name: string };
}

export function reviewEviction(review: AdmissionReview): EvictionDecision {
  const request = review.request;
  if (!request?.uid) throw new Error('not an AdmissionReview request: request.uid is missing');
  const decision: EvictionDecision = { review: { apiVersion: review.apiVersion ?? 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid, allowed: true } } };
  const isEviction = request.resource?.resource === 'pods' && request.subResource === 'eviction' && request.operation === 'CREATE';
  if (isEviction && !request.dryRun && request.name && request.namespace) decision.pod = { namespace: request.namespace, name: request.name };
  return decision;
}
