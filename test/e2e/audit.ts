import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';

export interface AuditEvent {
  verb: string;
  stage: string;
  user: { username: string };
  objectRef?: { resource?: string; subresource?: string; name?: string; namespace?: string };
  stageTimestamp: string;
  responseStatus?: { code?: number };
}

/**
 * The audit log and its rotations, oldest first: the apiserver rotates at 100 MB (lumberjack's default
 * for --audit-log-maxsize 0) into `audit-<timestamp>.log`, which a long suite or a 1000-node benchmark reaches.
 */
export function auditLogFiles(auditLog: string): string[] {
  const dir = dirname(auditLog);
  const stem = basename(auditLog, extname(auditLog));
  const rotated = readdirSync(dir).filter((f) => f.startsWith(`${stem}-`) && f.endsWith(extname(auditLog))).sort();
  return [...rotated.map((f) => join(dir, f)), auditLog];
}

/** Every audit event whose line contains `mustContain` (a cheap pre-filter before JSON parsing). */
export function auditEvents(auditLog: string, mustContain = ''): AuditEvent[] {
  return auditLogFiles(auditLog).flatMap((f) => readFileSync(f, 'utf8').split('\n')
    .filter((l) => l && l.includes(mustContain)).map((l) => JSON.parse(l) as AuditEvent));
}

/** Write requests (create, update, patch, delete) that `username` completed after `since` (ms). */
export function writesBy(auditLog: string, username: string, since: number): AuditEvent[] {
  return auditEvents(auditLog, username)
    .filter((e) => e.stage === 'ResponseComplete' && e.user.username === username && Date.parse(e.stageTimestamp) >= since);
}
