/**
 * `npm run demo -- --once` as a user runs it (after the setup `npm test` already did): the tiny BLOOM
 * trained on real text served from one pod of 4 rank processes, its streamed completion printed
 * beside transformers' fp32 answer. The completion must be readable text of the corpus's script.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../cluster/paths.js';

const run = promisify(execFile);

describe('npm run demo -- --once', function () {
  it('serves the trained tiny BLOOM and prints a readable streamed completion next to transformers\' fp32 answer', async function () {
    this.timeout(15 * 60_000);
    const { stdout } = await run(process.execPath, [join(repoRoot(), 'dist', 'test', 'demo', 'demo.js'), '--once'], { maxBuffer: 64 << 20, timeout: 14 * 60_000 })
      .catch((err: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`the demo failed: ${err.message}\n${(err.stdout ?? '').slice(-4000)}\n${(err.stderr ?? '').slice(-2000)}`);
      });
    /** The indented text block printed under a header line. */
    const block = (header: string) => {
      const lines = stdout.slice(stdout.indexOf(header) + header.length).split('\n').slice(1);
      const end = lines.findIndex((l) => !l.startsWith('    '));
      return lines.slice(0, end < 0 ? lines.length : end).map((l) => l.slice(4)).join('\n');
    };
    const completion = block('bloom-worker, INT8, TP=4 (one pod, 4 rank processes), streamed:');
    const reference = block('transformers, fp32, the original weights:');
    const prompt = /prompt \(held out of the training text\): (.*)/.exec(stdout)?.[1] ?? '';
    assert.ok(prompt.length > 10, `a prompt from the corpus: ${JSON.stringify(prompt)}`);
    assert.ok(completion.startsWith(prompt) && completion.length > prompt.length + 10, `a completion of the prompt: ${JSON.stringify(completion)}`);
    assert.ok(reference.startsWith(prompt), `transformers' answer: ${JSON.stringify(reference)}`);
    assert.doesNotMatch(completion, /\uFFFD/, 'no broken characters');
    assert.match(completion, /^[\x20-\x7E\n]+$/, 'only the corpus\'s script (printable ASCII)');
    assert.match(stdout, /the two agree on (all \d+ tokens|the first \d+ of \d+ tokens)/);
    assert.match(stdout, /tiny-bloom\s+1\s+1\s+4\s+1\s+4\s+Available/, 'kubectl get bd: one pod of 4 GPUs per group');
    assert.match(stdout, /demo succeeded \(--once\)/);
  });
});
