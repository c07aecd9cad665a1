import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { request, type Agent } from 'node:https';

export interface Upstream {
  url: URL;
  /** Keep-alive, authenticating with the proxy's client certificate. */
  agent: Agent;
}

export interface ForwardEvents {
  /** The upstream status line and headers reached the client. */
  onResponse(status: number): void;
  /** Upstream could not be reached or broke off; headers may already be sent. */
  onError(error: Error): void;
}

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = new Set(String(headers.connection ?? '').split(',').map((h) => h.trim().toLowerCase()));
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name) && !named.has(name)));
}

/**
 * Sends the request upstream with its body as is and streams the response back: every upstream chunk is
 * written as it arrives (chunked), so watch events are not held back. A client that goes away aborts upstream.
 */
export function forward(upstream: Upstream, req: IncomingMessage, res: ServerResponse, events: ForwardEvents): void {
  const upstreamReq = request(new URL(req.url ?? '/', upstream.url), {
    method: req.method, agent: upstream.agent, headers: { ...endToEnd(req.headers), host: upstream.url.host },
  });
  upstreamReq.on('response', (upstreamRes) => {
    res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, endToEnd(upstreamRes.headers));
    // a watch sends nothing until the first event; the client should know it is established before that
    res.flushHeaders();
    events.onResponse(res.statusCode);
    upstreamRes.on('error', (err) => events.onError(err));
    upstreamRes.pipe(res);
  });
  upstreamReq.on('error', (err) => events.onError(err));
  res.on('close', () => { if (!res.writableFinished) upstreamReq.destroy(); });
  req.pipe(upstreamReq);
}
