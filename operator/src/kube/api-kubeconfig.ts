// The KubeConfig behind every API client of the operator (makeApiClient and
// KubernetesObjectApi.makeApiClient). client-node 1.4.0 authenticates each request
// through the KubeConfig's applySecurityAuthentication, the one hook that sees every
// request context, and there it falls short twice:
// - no request timeout: a server that accepts a connection and never answers hangs the
//   call (and the reconcile waiting on it) forever; the deadline is set here;
// - a new https.Agent per request, so no connection is ever reused: every call is a TCP
//   connect, a TLS handshake and a fresh OpenSSL context (CA, client certificate and key
//   parsed again), native memory V8's GC does not see. Here the requests share one
//   keep-alive agent per distinct TLS configuration, as client-go shares one transport.
// Watches authenticate through applyToHTTPSOptions instead: each is one long-lived
// connection of its own, unbounded, as long-lived requests must be.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

/**
 * Sockets kept open while idle, per agent: enough for the steady traffic of four workers and
 * leader election; a burst opens more (never queued client-side, the apiserver's priority and
 * fairness orders them, as with client-go) and closes them once they are idle again.
 */
const MAX_FREE_SOCKETS = 8;

type AgentOptions = https.AgentOptions & Record<string, unknown>;

/** What makes two agents interchangeable: every TLS option client-node sets (certificates may rotate on disk). */
function tlsFingerprint(options: AgentOptions): string {
  const hash = createHash('sha256');
  for (const [k, v] of Object.entries(options).sort(([a], [b]) => a.localeCompare(b))) {
    if (v === undefined || typeof v === 'function' || k === 'keepAlive' || k === 'maxFreeSockets' || k === 'path') continue;
    hash.update(`${k}=`);
    for (const part of [v].flat()) hash.update(Buffer.isBuffer(part) ? part : String(part)).update('\0');
  }
  return hash.digest('hex');
}

/** Lets an agent's in-flight requests finish, then closes its sockets instead of keeping them. */
function retire(agent: http.Agent): void {
  (agent as http.Agent & { keepAlive: boolean }).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
}

/** One keep-alive agent per TLS configuration; a superseded one is retired. */
export class AgentPool {
  private current: { fingerprint: string; agent: http.Agent } | undefined;

  /** A shared agent with `fresh`'s options; `fresh` itself when it is not a plain HTTP(S) agent (a proxy's). */
  agentFor(fresh: http.Agent): http.Agent {
    const proto = Object.getPrototypeOf(fresh) as object;
    const secure = proto === https.Agent.prototype;
    if (!secure && proto !== http.Agent.prototype) return fresh;
    const options = (fresh as http.Agent & { options: AgentOptions }).options;
    const fingerprint = `${secure ? 'https' : 'http'}:${tlsFingerprint(options)}`;
    if (this.current?.fingerprint !== fingerprint) {
      if (this.current) retire(this.current.agent);
      const Agent = secure ? https.Agent : http.Agent;
      this.current = { fingerprint, agent: new Agent({ ...options, keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS, scheduling: 'lifo' }) };
    }
    return this.current.agent;
  }
}

class ApiKubeConfig extends KubeConfig {
  private readonly agents = new AgentPool();

  constructor(private readonly timeoutMs: number) {
    super();
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (fresh) context.setAgent(this.agents.agentFor(fresh));
    // Covers connecting, the response headers and reading the body.
    context.setSignal(AbortSignal.timeout(this.timeoutMs));
  }
}

/**
 * A copy of `kubeConfig` whose API clients share keep-alive connections and abort every request
 * after `requestTimeoutMs`. A per-call signal set in a middleware replaces this deadline.
 */
export function apiKubeConfig(kubeConfig: KubeConfig, requestTimeoutMs: number): KubeConfig {
  if (!Number.isFinite(requestTimeoutMs) || requestTimeoutMs <= 0) {
    throw new Error(`request timeout must be a positive number of ms, got ${requestTimeoutMs}`);
  }
  const api = new ApiKubeConfig(requestTimeoutMs);
  const { clusters, users, contexts, currentContext } = kubeConfig;
  api.loadFromOptions({ clusters, users, contexts, currentContext });
  return api;
}
