// Leader election: the pure decisions (client-go semantics) and the
// LeaderElector loop against an in-memory Lease store with a manual clock.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decide,
  jitteredDelayMs,
  observe,
  releaseRecord,
  validateTiming,
  type LeaseRecord,
  type Observation,
} from '../../operator/src/leader/decision.js';
import { ConflictError, leaseToRecord, recordToSpec, type LeaseClient, type StoredLease } from '../../operator/src/leader/lease-client.js';
import { LeaderElector, type Clock } from '../../operator/src/leader/lease.js';
import { defaultIdentity, ownNamespace } from '../../operator/src/leader/identity.js';

const T0 = 1_750_000_000_000;
const held = (holder: string, at: number, transitions = 0, duration = 15): LeaseRecord => ({
  holderIdentity: holder,
  leaseDurationSeconds: duration,
  acquireTime: at,
  renewTime: at,
  leaseTransitions: transitions,
});

describe('leader decision (pure)', () => {
  const base = { identity: 'me', leaseDurationSeconds: 15 };

  it('creates the lease when it does not exist', () => {
    const { decision } = decide({ ...base, current: null, observation: undefined, now: T0 });
    assert.deepEqual(decision, {
      action: 'create',
      record: { holderIdentity: 'me', leaseDurationSeconds: 15, acquireTime: T0, renewTime: T0, leaseTransitions: 0 },
    });
  });

  it('takes a free lease (empty holder) at once and counts a transition', () => {
    const current = { ...held('', T0, 4), leaseDurationSeconds: 1 };
    const { decision } = decide({ ...base, current, observation: undefined, now: T0 + 1 });
    assert.equal(decision.action, 'update');
    assert.ok(decision.action === 'update');
    assert.equal(decision.acquired, true);
    assert.equal(decision.record.holderIdentity, 'me');
    assert.equal(decision.record.leaseTransitions, 5);
    assert.equal(decision.record.acquireTime, T0 + 1);
    assert.equal(decision.record.leaseDurationSeconds, 15);
  });

  it('waits while another holder is valid, until leaseDuration after it was observed', () => {
    const current = held('other', T0);
    const first = decide({ ...base, current, observation: undefined, now: T0 });
    assert.deepEqual(first.decision, { action: 'wait', holder: 'other', expiresAt: T0 + 15_000 });
    const later = decide({ ...base, current, observation: first.observation, now: T0 + 14_999 });
    assert.equal(later.decision.action, 'wait');
  });

  it('takes over a lease that has not changed for leaseDuration (local clock) and counts a transition', () => {
    const current = held('other', T0, 2);
    const first = decide({ ...base, current, observation: undefined, now: T0 });
    const { decision } = decide({ ...base, current, observation: first.observation, now: T0 + 15_000 });
    assert.ok(decision.action === 'update');
    assert.equal(decision.acquired, true);
    assert.equal(decision.record.holderIdentity, 'me');
    assert.equal(decision.record.leaseTransitions, 3);
  });

  it('restarts the expiry clock whenever the holder renews', () => {
    const first = decide({ ...base, current: held('other', T0), observation: undefined, now: T0 });
    const renewed = held('other', T0 + 10_000);
    const second = decide({ ...base, current: renewed, observation: first.observation, now: T0 + 14_000 });
    assert.deepEqual(second.decision, { action: 'wait', holder: 'other', expiresAt: T0 + 14_000 + 15_000 });
    const third = decide({ ...base, current: renewed, observation: second.observation, now: T0 + 20_000 });
    assert.equal(third.decision.action, 'wait');
  });

  it('never trusts the holder clock: an old renewTime seen for the first time is still valid', () => {
    const skewed = held('other', T0 - 3_600_000);
    const { decision } = decide({ ...base, current: skewed, observation: undefined, now: T0 });
    assert.equal(decision.action, 'wait');
  });

  it('renews its own lease keeping acquireTime and transitions', () => {
    const mine = held('me', T0, 7);
    const { decision } = decide({ ...base, current: mine, observation: undefined, now: T0 + 2_000 });
    assert.ok(decision.action === 'update');
    assert.equal(decision.acquired, false);
    assert.deepEqual(decision.record, { ...mine, renewTime: T0 + 2_000 });
  });

  it('renews its own lease even after leaseDuration (no self-expiry)', () => {
    const obs: Observation = { record: held('me', T0, 1), observedAt: T0 };
    const { decision } = decide({ ...base, current: held('me', T0, 1), observation: obs, now: T0 + 60_000 });
    assert.ok(decision.action === 'update');
    assert.equal(decision.acquired, false);
    assert.equal(decision.record.leaseTransitions, 1);
  });

  it('observe keeps the first-seen time while the record is unchanged', () => {
    const o1 = observe(undefined, held('x', T0), T0 + 5);
    assert.equal(observe(o1, held('x', T0), T0 + 500), o1);
    assert.equal(observe(o1, held('x', T0 + 1), T0 + 500).observedAt, T0 + 500);
  });

  it('release clears the holder with a 1s duration and keeps transitions', () => {
    assert.deepEqual(releaseRecord(held('me', T0, 3), 'me', T0 + 9), {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: T0 + 9,
      renewTime: T0 + 9,
      leaseTransitions: 3,
    });
    assert.equal(releaseRecord(held('other', T0), 'me', T0), null);
    assert.equal(releaseRecord(held('', T0), '', T0), null);
  });

  it('validates timing like client-go', () => {
    validateTiming({ leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 });
    assert.throws(
      () => validateTiming({ leaseDurationSeconds: 10, renewDeadlineSeconds: 10, retryPeriodSeconds: 2 }),
      /leaseDurationSeconds \(10\) must be greater than renewDeadlineSeconds \(10\)/,
    );
    assert.throws(
      () => validateTiming({ leaseDurationSeconds: 15, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 }),
      /renewDeadlineSeconds \(2\) must be greater than 1.2 x retryPeriodSeconds/,
    );
    assert.throws(
      () => validateTiming({ leaseDurationSeconds: 1.5, renewDeadlineSeconds: 1, retryPeriodSeconds: 0.2 }),
      /must be an integer/,
    );
    assert.throws(() => validateTiming({ leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 0 }), /positive/);
  });

  it('jitters the retry period within [1, 2.2) x period', () => {
    assert.equal(jitteredDelayMs(2, 0), 2000);
    assert.ok(jitteredDelayMs(2, 0.999) < 4400);
  });
});

describe('lease <-> record conversion', () => {
  it('reads MicroTime strings (as client-node 1.4.0 returns them) and writes 6 fractional digits', () => {
    const record = leaseToRecord({
      metadata: { name: 'l', resourceVersion: '5' },
      spec: {
        holderIdentity: 'pod-a',
        leaseDurationSeconds: 15,
        leaseTransitions: 2,
        acquireTime: '2025-06-01T10:00:00.123456Z' as unknown as Date,
        renewTime: '2025-06-01T10:00:05.000000Z' as unknown as Date,
      },
    });
    assert.deepEqual(record, {
      holderIdentity: 'pod-a',
      leaseDurationSeconds: 15,
      leaseTransitions: 2,
      acquireTime: Date.parse('2025-06-01T10:00:00.123Z'),
      renewTime: Date.parse('2025-06-01T10:00:05Z'),
    });
    const json = JSON.parse(JSON.stringify(recordToSpec(record))) as Record<string, unknown>;
    assert.equal(json.renewTime, '2025-06-01T10:00:05.000000Z');
    assert.equal(json.acquireTime, '2025-06-01T10:00:00.123000Z');
    assert.equal(json.holderIdentity, 'pod-a');
  });

  it('treats a missing holder as free', () => {
    assert.equal(leaseToRecord({ spec: {} }).holderIdentity, '');
  });
});

// ---------------------------------------------------------------------------
// The elector loop, against an in-memory API server with optimistic concurrency.

class ManualClock implements Clock {
  t = T0;
  private sleepers = new Set<{ at: number; wake: () => void }>();
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const s = { at: this.t + ms, wake: () => {} };
      const onAbort = () => s.wake();
      s.wake = () => {
        this.sleepers.delete(s);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.sleepers.add(s);
    });
  }
  /** Moves time forward in small steps, letting every woken loop run. */
  async advance(ms: number, step = 100): Promise<void> {
    const end = this.t + ms;
    while (this.t < end) {
      this.t = Math.min(end, this.t + step);
      for (const s of [...this.sleepers]) if (s.at <= this.t) s.wake();
      await flush();
    }
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

class MemoryLeaseStore {
  lease: StoredLease | null = null;
  private rv = 0;
  writes = 0;
  conflicts = 0;
  put(record: LeaseRecord): StoredLease {
    this.lease = { record: { ...record }, resourceVersion: String(++this.rv) };
    this.writes++;
    return { ...this.lease, record: { ...record } };
  }
  /** A client for one candidate; `down` makes every call fail (a partitioned pod). */
  client(): LeaseClient & { down: boolean; conflictNext: boolean } {
    const store = this;
    return {
      down: false,
      conflictNext: false,
      async get() {
        if (this.down) throw new Error('connection refused');
        return store.lease ? { ...store.lease, record: { ...store.lease.record } } : null;
      },
      async create(record) {
        if (this.down) throw new Error('connection refused');
        if (store.lease) {
          store.conflicts++;
          throw new ConflictError('exists');
        }
        return store.put(record);
      },
      async replace(prev, record) {
        if (this.down) throw new Error('connection refused');
        if (this.conflictNext || !store.lease || store.lease.resourceVersion !== prev.resourceVersion) {
          this.conflictNext = false;
          store.conflicts++;
          throw new ConflictError('stale resourceVersion');
        }
        return store.put(record);
      },
    };
  }
}

interface Candidate {
  elector: LeaderElector;
  client: ReturnType<MemoryLeaseStore['client']>;
  started: number;
  stopped: number;
  leadingSignal?: AbortSignal;
  done: Promise<void>;
}

type Start = (signal: AbortSignal) => void | Promise<void>;

function candidate(store: MemoryLeaseStore, clock: ManualClock, identity: string, random = () => 0, start?: Start): Candidate {
  const client = store.client();
  const c: Partial<Candidate> = { client, started: 0, stopped: 0 };
  c.elector = new LeaderElector({
    namespace: 'ops',
    name: 'bloom-operator',
    identity,
    client,
    clock,
    random,
    onStartedLeading: (signal) => {
      c.started!++;
      c.leadingSignal = signal;
      return start?.(signal);
    },
    onStoppedLeading: () => {
      c.stopped!++;
    },
  });
  c.done = c.elector.run();
  return c as Candidate;
}

describe('LeaderElector', () => {
  it('requires a client or kubeConfig and valid timing', () => {
    const noop = () => {};
    assert.throws(
      () => new LeaderElector({ namespace: 'a', name: 'b', identity: 'c', onStartedLeading: noop, onStoppedLeading: noop }),
      /kubeConfig or client is required/,
    );
    const client = new MemoryLeaseStore().client();
    assert.throws(
      () =>
        new LeaderElector({
          namespace: 'a',
          name: 'b',
          identity: 'c',
          client,
          leaseDurationSeconds: 5,
          renewDeadlineSeconds: 10,
          onStartedLeading: noop,
          onStoppedLeading: noop,
        }),
      /must be greater than renewDeadlineSeconds/,
    );
  });

  it('scales the renew deadline and retry period down with a short lease duration', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const noop = () => {};
    for (const leaseDurationSeconds of [1, 3, 5, 15, 60]) {
      new LeaderElector({ namespace: 'a', name: 'b', identity: 'c', client: store.client(), leaseDurationSeconds, onStartedLeading: noop, onStoppedLeading: noop });
    }
    // With a 3s lease the leader renews every 0.4s and gives up after 2s.
    let stopped = 0;
    const client = store.client();
    const e = new LeaderElector({
      namespace: 'a', name: 'b', identity: 'c', client, clock, leaseDurationSeconds: 3,
      onStartedLeading: noop,
      onStoppedLeading: () => {
        stopped++;
      },
    });
    const done = e.run();
    await flush();
    const writes = store.writes;
    await clock.advance(2_000, 50);
    assert.equal(store.writes - writes, 5);
    client.down = true;
    await clock.advance(2_500, 50);
    assert.equal(stopped, 1);
    await done;
  });

  it('acquires a missing lease, leads, and renews every retry period', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, 'a');
    await flush();
    assert.equal(a.elector.isLeader(), true);
    assert.equal(a.started, 1);
    assert.equal(store.lease?.record.holderIdentity, 'a');
    assert.equal(store.lease?.record.leaseTransitions, 0);
    const firstRenew = store.lease!.record.renewTime!;
    await clock.advance(10_000);
    assert.ok(store.lease!.record.renewTime! >= firstRenew + 8_000, 'renewTime advances');
    assert.ok(store.writes >= 5, `renewed every ~2s (writes: ${store.writes})`);
    assert.equal(store.lease?.record.acquireTime, T0);
    await a.elector.release();
    await a.done;
  });

  it('lets exactly one of two simultaneous candidates lead; 409s are retried, not fatal', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, 'a');
    const b = candidate(store, clock, 'b');
    await clock.advance(30_000);
    assert.equal(Number(a.elector.isLeader()) + Number(b.elector.isLeader()), 1);
    const leader = a.elector.isLeader() ? a : b;
    const standby = leader === a ? b : a;
    assert.equal(standby.started, 0);
    assert.equal(standby.elector.getLeader(), leader === a ? 'a' : 'b');
    assert.ok(store.conflicts >= 1, 'the loser of the create race saw a conflict');
    await Promise.all([a.elector.release(), b.elector.release()]);
  });

  it('hands over at once on release(): the standby takes the lease within one retry period', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, 'a');
    await flush();
    const b = candidate(store, clock, 'b');
    await clock.advance(5_000);
    assert.equal(a.elector.isLeader(), true);
    assert.equal(b.elector.isLeader(), false);

    await a.elector.release();
    await a.done;
    assert.equal(a.stopped, 1);
    assert.equal(a.leadingSignal?.aborted, true, 'the leading signal aborts');
    assert.equal(store.lease?.record.holderIdentity, '');
    assert.equal(store.lease?.record.leaseDurationSeconds, 1);

    await clock.advance(2_000); // retry period, jitter 0
    assert.equal(b.elector.isLeader(), true);
    assert.equal(store.lease?.record.holderIdentity, 'b');
    assert.equal(store.lease?.record.leaseTransitions, 1);
    await b.elector.release();
  });

  it('takes over from a crashed leader only after the lease duration has passed', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, 'a');
    await flush();
    const b = candidate(store, clock, 'b');
    await clock.advance(4_000);
    a.client.down = true; // partitioned: a can no longer renew
    const lastRenew = store.lease!.record.renewTime!;

    // The next renew starts one retry period (2s) after the last success and
    // gives up when it has not succeeded within the renew deadline (10s).
    await clock.advance(11_900);
    assert.equal(a.elector.isLeader(), true, 'a leads until its renew deadline passes');
    await clock.advance(200);
    assert.equal(a.elector.isLeader(), false, 'a stops leading once the renew deadline passes');
    assert.equal(a.stopped, 1);
    await a.done;
    assert.equal(b.elector.isLeader(), false, 'b still waits: the lease is not yet expired');

    await clock.advance(lastRenew + 15_000 + 4_400 - clock.now());
    assert.equal(b.elector.isLeader(), true, 'b takes over after leaseDuration (+ one jittered retry)');
    assert.equal(store.lease?.record.holderIdentity, 'b');
    assert.equal(store.lease?.record.leaseTransitions, 1);
    await b.elector.release();
  });

  it('keeps leading through a conflict on renew (retried within the deadline)', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, 'a');
    await flush();
    a.client.conflictNext = true;
    await clock.advance(6_000);
    assert.equal(a.elector.isLeader(), true);
    assert.equal(a.stopped, 0);
    assert.ok(store.conflicts >= 1);
    await a.elector.release();
  });

  it('stops leading when another candidate has taken the lease', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, 'a');
    await flush();
    store.put({ ...store.lease!.record, holderIdentity: 'intruder', leaseTransitions: 1 });
    await clock.advance(13_000);
    assert.equal(a.elector.isLeader(), false);
    await a.done;
    await a.elector.release();
    assert.equal(store.lease?.record.holderIdentity, 'intruder', 'release never clears a lease held by someone else');
  });

  it('release() while campaigning leaves the lease untouched', async () => {
    const store = new MemoryLeaseStore();
    store.put(held('other', T0));
    const clock = new ManualClock();
    const b = candidate(store, clock, 'b');
    await clock.advance(3_000);
    const writes = store.writes;
    await b.elector.release();
    await b.done;
    assert.equal(b.started, 0);
    assert.equal(b.stopped, 0);
    assert.equal(store.writes, writes);
    assert.equal(store.lease?.record.holderIdentity, 'other');
  });

  it('a leader whose start fails stops renewing, releases the lease and run() rejects; the standby leads at once', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    // A controller whose caches do not sync within 5 s.
    const unsyncable: Start = (signal) => clock.sleep(5_000, signal).then(() => Promise.reject(new Error('caches not synced within 5s')));
    const a = candidate(store, clock, 'a', () => 0, unsyncable);
    const failed = assert.rejects(a.done, /caches not synced within 5s/);
    await flush();
    const b = candidate(store, clock, 'b');
    const writes = store.writes;
    await clock.advance(4_900);
    assert.equal(a.elector.isLeader(), true, 'a leads (and renews) while its start is in progress');
    assert.ok(store.writes - writes >= 2, `renewed while starting (writes: ${store.writes - writes})`);

    await clock.advance(200);
    await failed;
    assert.equal(a.elector.isLeader(), false);
    assert.equal(a.stopped, 1);
    assert.equal(a.leadingSignal?.aborted, true);
    assert.deepEqual([store.lease?.record.holderIdentity, store.lease?.record.leaseDurationSeconds], ['', 1], 'released');

    await clock.advance(2_000); // one retry period, not a lease duration
    assert.equal(b.elector.isLeader(), true);
    assert.equal(store.lease?.record.holderIdentity, 'b');
    await clock.advance(20_000);
    assert.equal(store.lease?.record.holderIdentity, 'b', 'a never takes the lease back: its loop is over');
    assert.equal(a.started, 1);
    await b.elector.release();
  });

  it('releases even when a renew was cut short after the server applied it (a synchronous throw at once)', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, 'a', () => 0, () => {
      throw new Error('no controller');
    });
    await assert.rejects(a.done, /no controller/);
    assert.equal(a.stopped, 1);
    assert.equal(store.lease?.record.holderIdentity, '', 'released over the latest resourceVersion, not a 409');
  });

  it('only logs a start that fails after leadership ended (shutdown during start): run() resolves', async () => {
    const store = new MemoryLeaseStore();
    const clock = new ManualClock();
    const cutShort: Start = (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('stopped'))));
    const a = candidate(store, clock, 'a', () => 0, cutShort);
    await clock.advance(3_000);
    await a.elector.release();
    await a.done;
    assert.equal(a.stopped, 1);
    assert.equal(store.lease?.record.holderIdentity, '');
  });

  it('stops leading when renew requests hang past the renew deadline (real clock)', async function () {
    this.timeout(10_000);
    const store = new MemoryLeaseStore();
    const client = store.client();
    let hang = false;
    const hanging: LeaseClient = {
      get: (signal) => (hang ? new Promise(() => {}) : client.get(signal)),
      create: (r, s) => client.create(r, s),
      replace: (p, r, s) => client.replace(p, r, s),
    };
    let stopped = 0;
    const elector = new LeaderElector({
      namespace: 'ops',
      name: 'l',
      identity: 'a',
      client: hanging,
      leaseDurationSeconds: 1,
      renewDeadlineSeconds: 0.5,
      retryPeriodSeconds: 0.1,
      onStartedLeading: () => {},
      onStoppedLeading: () => {
        stopped++;
      },
    });
    const done = elector.run();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(elector.isLeader(), true);
    hang = true;
    const t = Date.now();
    await done;
    const took = Date.now() - t;
    assert.equal(stopped, 1);
    assert.equal(elector.isLeader(), false);
    assert.ok(took < 1_000, `stopped leading ${took}ms after requests started hanging (deadline 500ms)`);
  });
});

describe('leader identity and namespace', () => {
  it('makes a unique identity from the pod name', () => {
    const a = defaultIdentity({ POD_NAME: 'op-7d9f-abc' });
    const b = defaultIdentity({ POD_NAME: 'op-7d9f-abc' });
    assert.match(a, /^op-7d9f-abc_[0-9a-f-]{36}$/);
    assert.notEqual(a, b);
    assert.ok(defaultIdentity({}).length > 37, 'falls back to the hostname');
  });

  it('finds its namespace from POD_NAMESPACE, the service account file, or "default"', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bloom-ns-'));
    const file = join(dir, 'namespace');
    assert.equal(ownNamespace({ POD_NAMESPACE: 'ops' }, file), 'ops');
    assert.equal(ownNamespace({}, file), 'default');
    writeFileSync(file, 'bloom-system\n');
    assert.equal(ownNamespace({}, file), 'bloom-system');
  });
});
