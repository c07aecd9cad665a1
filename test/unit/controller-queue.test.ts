import assert from 'node:assert/strict';
import { WorkQueue } from '../../operator/src/controller/queue.js';

/** A ref'd sleep: the queue's own timers are unref'd, so something must keep the event loop alive while a test waits. */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Lets pending promise callbacks and immediates run. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Tracks whether a promise has settled, and with what. */
function track<T>(promise: Promise<T>): { settled: boolean; value: T | undefined; promise: Promise<T> } {
  const t = { settled: false, value: undefined as T | undefined, promise };
  void promise.then((v) => { t.settled = true; t.value = v; });
  return t;
}

/** Resolves as the promise does, failing the test if it has not settled within limitMs (the guard is ref'd). */
async function within<T>(promise: Promise<T>, limitMs: number): Promise<T> {
  let guard: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { guard = setTimeout(() => reject(new Error(`nothing within ${limitMs} ms`)), limitMs); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(guard);
  }
}

describe('WorkQueue (client-go workqueue semantics)', () => {
  let queues: WorkQueue[] = [];
  const newQueue = (...args: ConstructorParameters<typeof WorkQueue>) => {
    const q = new WorkQueue(...args);
    queues.push(q);
    return q;
  };
  afterEach(() => {
    for (const q of queues) q.shutDown();
    queues = [];
  });

  describe('add / get / done', () => {
    it('hands keys out in FIFO order', async () => {
      const q = newQueue();
      q.add('c');
      q.add('a');
      q.add('b');
      assert.equal(await q.get(), 'c');
      assert.equal(await q.get(), 'a');
      assert.equal(await q.get(), 'b');
    });

    it('queues a key at most once (dedup), keeping its first position', async () => {
      const q = newQueue();
      q.add('a');
      q.add('b');
      q.add('a');
      q.add('a');
      assert.equal(q.length, 2);
      assert.equal(await q.get(), 'a');
      assert.equal(await q.get(), 'b');
      assert.equal(q.length, 0);
    });

    it('can queue a key again once a worker has taken it', async () => {
      const q = newQueue();
      q.add('a');
      assert.equal(await q.get(), 'a');
      q.done('a');
      q.add('a');
      assert.equal(q.length, 1);
      assert.equal(await q.get(), 'a');
    });

    it('does not queue a key added while in flight; done() re-queues it, once however many adds came', async () => {
      const q = newQueue();
      q.add('a');
      assert.equal(await q.get(), 'a');
      q.add('a');
      q.add('a');
      q.add('a');
      assert.equal(q.length, 0, 'not queued while a worker holds it');
      const other = track(q.get());
      await flush();
      assert.equal(other.settled, false, 'a second worker does not get the in-flight key');
      q.done('a');
      assert.equal(await other.promise, 'a', 're-queued after done and handed to the waiting worker');
      assert.equal(q.length, 0);
      q.done('a');
      assert.equal(q.length, 0, 'only re-queued once');
    });

    it('re-queues an in-flight key behind keys queued meanwhile', async () => {
      const q = newQueue();
      q.add('a');
      assert.equal(await q.get(), 'a');
      q.add('a');
      q.add('b');
      q.done('a');
      assert.equal(q.length, 2);
      assert.equal(await q.get(), 'b');
      assert.equal(await q.get(), 'a');
    });

    it('done() of a key that was not re-added queues nothing', async () => {
      const q = newQueue();
      q.add('a');
      assert.equal(await q.get(), 'a');
      q.done('a');
      assert.equal(q.length, 0);
      const next = track(q.get());
      await flush();
      assert.equal(next.settled, false);
    });

    it('never hands one key to two waiting workers at once', async () => {
      const q = newQueue();
      const w1 = track(q.get());
      const w2 = track(q.get());
      q.add('a');
      await flush();
      assert.equal(w1.value, 'a');
      q.add('a');
      await flush();
      assert.equal(w2.settled, false, 'the in-flight key is not handed to the second worker');
      q.add('b');
      await flush();
      assert.equal(w2.value, 'b', 'another key is');
      q.done('a');
      assert.equal(q.length, 1, 'the key added while in flight is queued after done');
      assert.equal(await q.get(), 'a');
    });

    it('get() waits for an add, and waiting workers are served in order', async () => {
      const q = newQueue();
      const w1 = track(q.get());
      const w2 = track(q.get());
      await flush();
      assert.equal(w1.settled, false);
      assert.equal(w2.settled, false);
      q.add('x');
      assert.equal(q.length, 0, 'handed straight to a waiting worker, not queued');
      await flush();
      assert.equal(w1.value, 'x');
      assert.equal(w2.settled, false);
      q.add('y');
      assert.equal(await w2.promise, 'y');
    });

    it('length counts queued keys only, not keys in flight or delayed', async () => {
      const q = newQueue();
      assert.equal(q.length, 0);
      q.add('a');
      q.add('b');
      q.addAfter('c', 10_000);
      assert.equal(q.length, 2);
      assert.equal(await q.get(), 'a');
      assert.equal(q.length, 1);
      q.add('a');
      assert.equal(q.length, 1, 'the in-flight key is not counted');
      q.done('a');
      assert.equal(q.length, 2);
    });
  });

  describe('addAfter', () => {
    it('adds the key after the delay, not before', async () => {
      const q = newQueue();
      const start = performance.now();
      q.addAfter('a', 30);
      assert.equal(q.length, 0, 'not queued at once');
      const next = track(q.get());
      await sleep(5);
      assert.equal(next.settled, false);
      assert.equal(await within(next.promise, 2_000), 'a');
      const elapsed = performance.now() - start;
      assert.ok(elapsed >= 28, `came after ${elapsed} ms, expected >= 30 ms`);
      assert.ok(elapsed < 1_000, `came after ${elapsed} ms`);
    });

    it('adds at once for a delay <= 0', () => {
      const q = newQueue();
      q.addAfter('a', 0);
      q.addAfter('b', -5);
      assert.equal(q.length, 2);
    });

    it('orders keys by their due time', async () => {
      const q = newQueue();
      q.addAfter('late', 40);
      q.addAfter('soon', 5);
      assert.equal(await within(q.get(), 2_000), 'soon');
      assert.equal(await within(q.get(), 2_000), 'late');
    });

    it('an earlier pending add wins: a later addAfter of the same key is dropped', async () => {
      const q = newQueue();
      const start = performance.now();
      q.addAfter('a', 10);
      q.addAfter('a', 150);
      assert.equal(await within(q.get(), 2_000), 'a');
      assert.ok(performance.now() - start < 140, 'came with the earlier add');
      q.done('a');
      await sleep(250 - (performance.now() - start));
      assert.equal(q.length, 0, 'the later add was never scheduled');
    });

    it('a sooner addAfter replaces a later pending one', async () => {
      const q = newQueue();
      const start = performance.now();
      q.addAfter('a', 150);
      q.addAfter('a', 10);
      assert.equal(await within(q.get(), 2_000), 'a');
      assert.ok(performance.now() - start < 140, 'came with the sooner add');
      q.done('a');
      await sleep(250 - (performance.now() - start));
      assert.equal(q.length, 0, 'the later timer was cancelled');
    });

    it('a delayed add of a key already queued does not queue it twice', async () => {
      const q = newQueue();
      q.add('a');
      q.addAfter('a', 5);
      await sleep(30);
      assert.equal(q.length, 1);
    });

    it('a delayed add of an in-flight key re-queues it after done', async () => {
      const q = newQueue();
      q.add('a');
      assert.equal(await q.get(), 'a');
      q.addAfter('a', 5);
      await sleep(30);
      assert.equal(q.length, 0, 'not queued while in flight');
      q.done('a');
      assert.equal(q.length, 1);
    });
  });

  describe('addRateLimited / forget', () => {
    it('backs off exponentially, base * 2^failures, capped at maxDelayMs', () => {
      const q = newQueue({ baseDelayMs: 3, maxDelayMs: 40 });
      const delays = Array.from({ length: 7 }, () => q.addRateLimited('a'));
      assert.deepEqual(delays, [3, 6, 12, 24, 40, 40, 40]);
    });

    it('counts failures per key', () => {
      const q = newQueue({ baseDelayMs: 2, maxDelayMs: 1_000 });
      assert.equal(q.addRateLimited('a'), 2);
      assert.equal(q.addRateLimited('a'), 4);
      assert.equal(q.addRateLimited('b'), 2);
      assert.equal(q.addRateLimited('a'), 8);
      assert.equal(q.addRateLimited('b'), 4);
    });

    it('forget() resets the back-off of that key only', () => {
      const q = newQueue({ baseDelayMs: 2, maxDelayMs: 1_000 });
      q.addRateLimited('a');
      q.addRateLimited('a');
      q.addRateLimited('b');
      q.forget('a');
      assert.equal(q.addRateLimited('a'), 2);
      assert.equal(q.addRateLimited('b'), 4);
    });

    it('defaults to 5 ms doubling up to 300 s', () => {
      const q = newQueue();
      const delays = Array.from({ length: 20 }, () => q.addRateLimited('a'));
      assert.deepEqual(delays.slice(0, 4), [5, 10, 20, 40]);
      assert.equal(delays[15], 5 * 2 ** 15);
      assert.equal(delays[16], 300_000, '5 * 2^16 = 327680 is capped');
      assert.equal(delays[19], 300_000);
    });

    it('re-adds the key after the back-off delay', async () => {
      const q = newQueue({ baseDelayMs: 25 });
      const start = performance.now();
      assert.equal(q.addRateLimited('a'), 25);
      assert.equal(q.length, 0);
      assert.equal(await within(q.get(), 2_000), 'a');
      const elapsed = performance.now() - start;
      assert.ok(elapsed >= 23, `came after ${elapsed} ms, expected >= 25 ms`);
      assert.ok(elapsed < 1_000, `came after ${elapsed} ms`);
    });

    it('a retry of a key already due sooner keeps the sooner add (and still counts the failure)', async () => {
      const q = newQueue({ baseDelayMs: 200 });
      const start = performance.now();
      q.addAfter('a', 5);
      assert.equal(q.addRateLimited('a'), 200);
      assert.equal(await within(q.get(), 2_000), 'a');
      assert.ok(performance.now() - start < 150);
      assert.equal(q.addRateLimited('a'), 400, 'the failure was counted');
    });
  });

  describe('shutDown', () => {
    it('resolves waiting get()s with undefined', async () => {
      const q = newQueue();
      const w1 = q.get();
      const w2 = q.get();
      q.shutDown();
      assert.equal(await w1, undefined);
      assert.equal(await w2, undefined);
      assert.equal(await q.get(), undefined, 'and later get()s on an empty queue');
    });

    it('ignores adds after shut down', async () => {
      const q = newQueue();
      q.shutDown();
      q.add('a');
      q.addAfter('b', 0);
      q.addAfter('c', 5);
      q.addRateLimited('d');
      assert.equal(q.length, 0);
      await sleep(30);
      assert.equal(q.length, 0);
      assert.equal(await q.get(), undefined);
    });

    it('drops pending delayed adds', async () => {
      const q = newQueue();
      q.addAfter('a', 5);
      q.addAfter('b', 15);
      q.shutDown();
      await sleep(40);
      assert.equal(q.length, 0);
      assert.equal(await q.get(), undefined);
    });

    it('lets workers drain keys queued before shut down, then returns undefined', async () => {
      const q = newQueue();
      q.add('a');
      q.add('b');
      q.shutDown();
      assert.equal(await q.get(), 'a');
      assert.equal(await q.get(), 'b');
      assert.equal(await q.get(), undefined);
    });

    it('does not re-queue a key added while in flight once shut down', async () => {
      const q = newQueue();
      q.add('a');
      assert.equal(await q.get(), 'a');
      q.add('a');
      q.shutDown();
      q.done('a');
      assert.equal(q.length, 0);
      assert.equal(await q.get(), undefined);
    });
  });
});

