import { readFileSync } from 'node:fs';

export interface AuditEvent {
  verb: string;
  stage: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; name?: string; namespace?: string };
  stageTimestamp: string;
  responseStatus?: { code?: number };
}

/** Write requests (create, update, patch, delete) that `username` completed after `since` (ms). */
export function writesBy(auditLog: string, username: string, since: number): AuditEvent[] {
  return readFileSync(auditLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent)
    .filter((e) => e.stage === 'ResponseComplete' && e.user.username === username && Date.parse(e.stageTimestamp) >= since);
}
