import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditLogFiles, writesBy } from '../e2e/audit.js';

const line = (user: string, name: string, at: string) => JSON.stringify({
  verb: 'create', stage: 'ResponseComplete', user: { username: user }, objectRef: { resource: 'pods', name }, stageTimestamp: at,
});

describe('audit log reading (test harness)', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'audit-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the rotated files oldest first, then the live one, and nothing else', () => {
    writeFileSync(join(dir, 'audit-2026-12-02T10-00-00.000.log'), `${line('op', 'a', '2026-12-02T09:59:00Z')}\n`);
    writeFileSync(join(dir, 'audit-2026-12-02T09-00-00.000.log'), `${line('op', 'z', '2026-12-02T08:59:00Z')}\n`);
    writeFileSync(join(dir, 'audit.log'), `${line('op', 'b', '2026-12-02T10:01:00Z')}\n${line('other', 'c', '2026-12-02T10:02:00Z')}\n`);
    writeFileSync(join(dir, 'apiserver.log'), 'not json\n');
    const log = join(dir, 'audit.log');
    assert.deepEqual(auditLogFiles(log).map((f) => f.slice(dir.length + 1)),
      ['audit-2026-12-02T09-00-00.000.log', 'audit-2026-12-02T10-00-00.000.log', 'audit.log']);
    assert.deepEqual(writesBy(log, 'op', 0).map((e) => e.objectRef?.name), ['z', 'a', 'b']);
    assert.deepEqual(writesBy(log, 'op', Date.parse('2026-12-02T09:00:00Z')).map((e) => e.objectRef?.name), ['a', 'b']);
  });
});
