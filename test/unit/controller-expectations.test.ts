import assert from 'node:assert/strict';
import { Expectations, type CacheLookup } from '../../operator/src/controller/expectations.js';

type Cached = { uid: string; resourceVersion: string; terminating: boolean };
const cache = (entries: Record<string, Cached>): CacheLookup => (resource, name) => entries[`${resource}/${name}`];
const at = (uid: string, resourceVersion = '1', terminating = false): Cached => ({ uid, resourceVersion, terminating });

describe('Expectations (the cache must show our writes before the next plan)', () => {
  it('a create is awaited until the cache holds the object', () => {
    const e = new Expectations(60_000);
    e.expect('ns/bd', [{ kind: 'present', resource: 'services', name: 'bd-g0' }], 0);
    assert.equal(e.check('ns/bd', cache({}), 1).satisfied, false);
    assert.equal(e.check('ns/bd', cache({ 'services/bd-g0': at('u') }), 2).satisfied, true);
    assert.equal(e.check('ns/bd', cache({}), 3).satisfied, true, 'a satisfied expectation is dropped');
  });

  it('a delete is satisfied by absence, by termination, or by another object of the same name', () => {
    const e = new Expectations();
    const wait = [{ kind: 'absent' as const, resource: 'pods' as const, name: 'p', uid: 'old' }];
    e.expect('k', wait, 0);
    assert.equal(e.check('k', cache({ 'pods/p': at('old') }), 1).satisfied, false);
    for (const shown of [{}, { 'pods/p': at('old', '2', true) }, { 'pods/p': at('new') }] as Array<Record<string, Cached>>) {
      e.expect('k', wait, 0);
      assert.equal(e.check('k', cache(shown), 1).satisfied, true);
    }
  });

  it('a record patch is awaited until the cache shows another resourceVersion (no old-epoch plan)', () => {
    const e = new Expectations();
    e.expect('k', [{ kind: 'present', resource: 'services', name: 's', notResourceVersion: '7' }], 0);
    assert.equal(e.check('k', cache({ 'services/s': at('u', '7') }), 1).satisfied, false);
    assert.deepEqual(e.check('k', cache({ 'services/s': at('u', '7') }), 1).waiting.map((w) => w.name), ['s']);
    assert.equal(e.check('k', cache({ 'services/s': at('u', '9') }), 2).satisfied, true);
  });

  it('keeps only the unconfirmed expectations, and expires them after the TTL', () => {
    const e = new Expectations(1_000);
    e.expect('k', [{ kind: 'present', resource: 'pods', name: 'a' }, { kind: 'present', resource: 'pods', name: 'b' }], 0);
    assert.deepEqual(e.check('k', cache({ 'pods/a': at('1') }), 10).waiting.map((w) => w.name), ['b']);
    assert.equal(e.expiry('k'), 1_000);
    assert.equal(e.check('k', cache({}), 999).satisfied, false);
    assert.equal(e.check('k', cache({}), 1_000).satisfied, true);
    assert.equal(e.expiry('k'), undefined);
  });

  it('keys are independent; forget drops a key', () => {
    const e = new Expectations();
    e.expect('a', [{ kind: 'present', resource: 'pods', name: 'x' }], 0);
    assert.equal(e.check('b', cache({}), 1).satisfied, true);
    e.forget('a');
    assert.equal(e.check('a', cache({}), 1).satisfied, true);
  });

  it('an informer event satisfies an expectation on its own: a pod created and deleted again between two reconciles is not awaited', () => {
    const e = new Expectations();
    e.expect('k', [{ kind: 'present', resource: 'pods', name: 'p' }, { kind: 'absent', resource: 'pods', name: 'q', uid: 'q1' }], 0);
    e.observe('k', 'pods', 'p', at('p1'));
    e.observe('k', 'pods', 'q', undefined);
    assert.deepEqual(e.check('k', cache({}), 1), { satisfied: true, waiting: [] });
  });

  it('an event for another object, or one that does not show the write yet, leaves the expectation', () => {
    const e = new Expectations();
    e.expect('k', [{ kind: 'present', resource: 'services', name: 's', notResourceVersion: '7' }], 0);
    e.observe('k', 'services', 'other', at('u', '9'));
    e.observe('k', 'pods', 's', at('u', '9'));
    e.observe('k', 'services', 's', at('u', '7'));
    assert.equal(e.check('k', cache({ 'services/s': at('u', '7') }), 1).satisfied, false);
    e.observe('k', 'services', 's', at('u', '8'));
    assert.equal(e.check('k', cache({ 'services/s': at('u', '7') }), 1).satisfied, true);
  });

  it('a create whose events (even its deletion) came before the write returned is not awaited; events older than the write do not count', () => {
    let t = 100;
    const e = new Expectations(60_000, () => t);
    e.observe('k', 'pods', 'old', undefined); // at 100, before the write below
    t = 205;
    e.observe('k', 'pods', 'p', at('p1'));
    t = 210;
    e.observe('k', 'pods', 'p', undefined); // created and deleted before the create's response came back
    e.expect('k', [{ kind: 'present', resource: 'pods', name: 'p' }, { kind: 'absent', resource: 'pods', name: 'old', uid: 'o1' }], 220, 200);
    assert.deepEqual(e.check('k', cache({ 'pods/old': at('o1') }), 221).waiting.map((w) => w.name), ['old'], 'only the delete is still awaited');
  });
});
