/**
 * Waits until every CRD is Established. `kubectl wait --for=condition=Established crd --all` fails at
 * once ("accessor error: <nil>") on a CRD the apiserver has not given a status yet, so a CRD applied
 * a moment ago is waited for again, up to the deadline.
 */
export async function waitCrdsEstablished(kubectl: (...args: string[]) => Promise<unknown>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await kubectl('wait', '--for=condition=Established', `--timeout=${Math.max(1, Math.ceil((deadline - Date.now()) / 1000))}s`, 'crd', '--all');
      return;
    } catch (err) {
      if (Date.now() >= deadline || !/accessor error/.test(String((err as Error).message))) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
