/**
 * The durable record of one group, kept in annotations of its headless Service:
 * which incarnation (epoch) and revision it runs, when that incarnation started and
 * first became Ready, its restart history and back-off, and why it gave up. The
 * Service lives exactly as long as the group, and every change to the record is a
 * write guarded by the Service's resourceVersion, so two reconciles (or two operator
 * replicas) can never both bump the epoch.
 */
import type { V1Service } from '@kubernetes/client-node';
import { API_GROUP } from '../api/constants.js';
import type { GroupFailure } from '../api/types.js';
import { ANNOTATIONS, LABELS } from '../groups/labels.js';

export const RECORD_ANNOTATIONS = {
  epoch: ANNOTATIONS.epoch,
  revision: `${API_GROUP}/revision`,
  epochStarted: `${API_GROUP}/epoch-started`,
  readySince: `${API_GROUP}/ready-since`,
  restarts: `${API_GROUP}/restarts`,
  restartTimes: `${API_GROUP}/restart-times`,
  notBefore: `${API_GROUP}/not-before`,
  lastFailure: `${API_GROUP}/last-failure`,
  failed: `${API_GROUP}/failed`,
  failedAt: `${API_GROUP}/failed-at`,
  disruptions: `${API_GROUP}/disruptions`,
  disruptionTimes: `${API_GROUP}/disruption-times`,
  resetToken: `${API_GROUP}/reset-token`,
} as const;

export interface GroupRecord {
  index: number;
  epoch: number;
  revision: string;
  epochStarted: number;
  readySince?: number;
  /** Recreations after workload failures (charged to maxGroupRestarts). */
  restarts: number;
  /** Restart times (ms) inside the restart window. */
  restartTimes: number[];
  /** Recreations after disruptions (not charged), and their times inside the window (their own back-off). */
  disruptions: number;
  disruptionTimes: number[];
  notBefore?: number;
  lastFailure?: GroupFailure;
  /** Set once the group gave up (restart budget exhausted): the reason, and when (it is retried a window later). */
  failed?: string;
  failedAt?: number;
  /** The deployment's reset annotation value this record has already honoured. */
  resetToken?: string;
}

const time = (value: string | undefined): number | undefined => {
  if (!value) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
};
const iso = (ms: number) => new Date(ms).toISOString();
const times = (value: string | undefined) => (value ?? '').split(',').map(time).filter((t): t is number => t !== undefined);
const isoList = (ms: readonly number[]) => (ms.length ? ms.map(iso).join(',') : null);

export function readRecord(service: V1Service): GroupRecord | undefined {
  const a = service.metadata?.annotations ?? {};
  const index = Number(service.metadata?.labels?.[LABELS.group]);
  const epoch = Number(a[RECORD_ANNOTATIONS.epoch]);
  if (!Number.isInteger(index) || !Number.isInteger(epoch)) return undefined;
  const record: GroupRecord = {
    index,
    epoch,
    revision: a[RECORD_ANNOTATIONS.revision] ?? '',
    epochStarted: time(a[RECORD_ANNOTATIONS.epochStarted]) ?? time(service.metadata?.creationTimestamp?.toString()) ?? 0,
    restarts: Number(a[RECORD_ANNOTATIONS.restarts] ?? 0) || 0,
    restartTimes: times(a[RECORD_ANNOTATIONS.restartTimes]),
    disruptions: Number(a[RECORD_ANNOTATIONS.disruptions] ?? 0) || 0,
    disruptionTimes: times(a[RECORD_ANNOTATIONS.disruptionTimes]),
  };
  const readySince = time(a[RECORD_ANNOTATIONS.readySince]);
  if (readySince !== undefined) record.readySince = readySince;
  const notBefore = time(a[RECORD_ANNOTATIONS.notBefore]);
  if (notBefore !== undefined) record.notBefore = notBefore;
  if (a[RECORD_ANNOTATIONS.lastFailure]) {
    try { record.lastFailure = JSON.parse(a[RECORD_ANNOTATIONS.lastFailure]!) as GroupFailure; } catch { /* a hand-edited value is ignored */ }
  }
  if (a[RECORD_ANNOTATIONS.failed]) record.failed = a[RECORD_ANNOTATIONS.failed];
  // A Failed record of an older operator has no time: it counts from when this one first reads it.
  const failedAt = time(a[RECORD_ANNOTATIONS.failedAt]);
  if (failedAt !== undefined) record.failedAt = failedAt;
  if (a[RECORD_ANNOTATIONS.resetToken]) record.resetToken = a[RECORD_ANNOTATIONS.resetToken];
  return record;
}

/** The annotations that encode a record; absent optional fields are null so a merge patch removes them. */
export function recordAnnotations(r: GroupRecord): Record<string, string | null> {
  return {
    [RECORD_ANNOTATIONS.epoch]: String(r.epoch),
    [RECORD_ANNOTATIONS.revision]: r.revision,
    [RECORD_ANNOTATIONS.epochStarted]: iso(r.epochStarted),
    [RECORD_ANNOTATIONS.readySince]: r.readySince === undefined ? null : iso(r.readySince),
    [RECORD_ANNOTATIONS.restarts]: String(r.restarts),
    [RECORD_ANNOTATIONS.restartTimes]: isoList(r.restartTimes),
    [RECORD_ANNOTATIONS.disruptions]: r.disruptions ? String(r.disruptions) : null,
    [RECORD_ANNOTATIONS.disruptionTimes]: isoList(r.disruptionTimes),
    [RECORD_ANNOTATIONS.notBefore]: r.notBefore === undefined ? null : iso(r.notBefore),
    [RECORD_ANNOTATIONS.lastFailure]: r.lastFailure ? JSON.stringify(r.lastFailure) : null,
    [RECORD_ANNOTATIONS.failed]: r.failed ?? null,
    [RECORD_ANNOTATIONS.failedAt]: r.failedAt === undefined ? null : iso(r.failedAt),
    [RECORD_ANNOTATIONS.resetToken]: r.resetToken ?? null,
  };
}
