// A deadline on every API request. client-node 1.4.0 has no request timeout:
// a server that accepts a connection and never answers hangs the call (and the
// reconcile waiting on it) forever. Clients from makeApiClient (and
// KubernetesObjectApi.makeApiClient) authenticate each request through the
// KubeConfig's applySecurityAuthentication, the one hook that sees every
// request context, so the deadline is set there. Watches authenticate through
// applyToFetchOptions instead and stay unbounded, as long-lived requests must.
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

class RequestTimeoutKubeConfig extends KubeConfig {
  constructor(private readonly timeoutMs: number) {
    super();
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    // Covers connecting, the response headers and reading the body.
    context.setSignal(AbortSignal.timeout(this.timeoutMs));
  }
}

/**
 * A copy of `kubeConfig` whose API clients abort every request after
 * `timeoutMs`. A per-call signal set in a middleware replaces this deadline.
 */
export function withRequestTimeout(kubeConfig: KubeConfig, timeoutMs: number): KubeConfig {
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`request timeout must be a positive number of ms, got ${timeoutMs}`);
  const timed = new RequestTimeoutKubeConfig(timeoutMs);
  const { clusters, users, contexts, currentContext } = kubeConfig;
  timed.loadFromOptions({ clusters, users, contexts, currentContext });
  return timed;
}
