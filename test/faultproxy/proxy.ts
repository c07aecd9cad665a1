import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { plainHttpKubeconfig, writeKubeconfig } from '../cluster/kubeconfig.js';
import { forward, type Upstream } from './forward.js';
import { requestInfo, type RequestInfo } from './request-info.js';
import { matches, RuleSet, type BasicAction, type Match, type Rule, type RuleHandle, type StatusAction } from './rules.js';
import { statusBody } from './status.js';

export interface FaultProxyOptions {
  /** The apiserver, https://127.0.0.1:<port>. */
  upstream: string;
  caFile: string;
  /** The client identity the proxy authenticates upstream as. */
  certFile: string;
  keyFile: string;
}

export type FaultKind = BasicAction['kind'];

export interface RequestRecord extends RequestInfo {
  /** When the request arrived (epoch ms). */
  time: number;
  /** The status sent to the client; undefined while none was (in flight, hanging, the client gone first). */
  status?: number;
  fault?: FaultKind;
}

export type RequestFilter = Match<RequestRecord> & { status?: number; fault?: FaultKind };

/** An HTTP proxy in front of the apiserver that injects faults into the requests its rules match. */
export class FaultProxy {
  /** Every request, in arrival order. */
  readonly requests: RequestRecord[] = [];
  private readonly rules = new RuleSet();
  private readonly server: Server;
  private readonly openWatches = new Set<ServerResponse>();

  constructor(private readonly upstream: Upstream) {
    // no request timeout of its own: a hanging or long watch request is what the tests ask for
    this.server = createServer({ requestTimeout: 0 }, (req, res) => this.handle(req, res));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  listen(): Promise<this> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve(this));
    });
  }

  /** Writes a kubeconfig for the proxy (plain HTTP, no credentials) and returns its path. */
  kubeconfig(path: string): string {
    return writeKubeconfig(path, plainHttpKubeconfig(this.url));
  }

  addRule(rule: Rule): RuleHandle {
    return this.rules.add(rule);
  }

  clearRules(): void {
    this.rules.clear();
  }

  count(filter: RequestFilter = {}): number {
    return this.requests.filter((r) => matches(filter, r)
      && (filter.status === undefined || r.status === filter.status)
      && (filter.fault === undefined || r.fault === filter.fault)).length;
  }

  /** Cuts every watch open now (rules only see new requests); returns how many. */
  cutWatches(): number {
    const open = [...this.openWatches];
    for (const res of open) res.destroy();
    return open.length;
  }

  /** Stops listening and destroys every open connection: hanging requests and watches included. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
    this.upstream.agent.destroy();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const record: RequestRecord = { time: Date.now(), ...requestInfo(req.method ?? 'GET', req.url ?? '/') };
    this.requests.push(record);
    const fault = this.rules.faultFor(record);
    if (fault) record.fault = fault.kind;
    switch (fault?.kind) {
      case 'status':
        return this.reply(res, record, fault);
      case 'hang':
        return;
      case 'delay': {
        const timer = setTimeout(() => this.pass(req, res, record), fault.ms);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case 'cutWatch':
        return this.pass(req, res, record, fault.afterMs);
      case undefined:
        return this.pass(req, res, record);
    }
  }

  private pass(req: IncomingMessage, res: ServerResponse, record: RequestRecord, cutAfterMs?: number): void {
    if (record.verb === 'watch') {
      this.openWatches.add(res);
      res.on('close', () => this.openWatches.delete(res));
    }
    forward(this.upstream, req, res, {
      onResponse: (status) => {
        record.status = status;
        if (cutAfterMs === undefined) return;
        const timer = setTimeout(() => res.destroy(), cutAfterMs);
        res.on('close', () => clearTimeout(timer));
      },
      onError: (error) => {
        if (res.headersSent || res.destroyed) res.destroy();
        else this.reply(res, record, { code: 502, message: `fault proxy: upstream ${this.upstream.url.host}: ${error.message}` });
      },
    });
  }

  private reply(res: ServerResponse, record: RequestRecord, status: Omit<StatusAction, 'kind'> & { message?: string }): void {
    const message = status.message ?? `injected by the fault proxy: ${status.code} for ${record.verb} ${record.resource || record.path}`;
    const body = statusBody(record, { ...status, message });
    res.writeHead(status.code, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      ...(status.retryAfterSeconds !== undefined && { 'retry-after': String(status.retryAfterSeconds) }),
    });
    record.status = status.code;
    res.end(body);
  }
}

export function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const agent = new Agent({
    keepAlive: true, ca: readFileSync(options.caFile), cert: readFileSync(options.certFile), key: readFileSync(options.keyFile),
  });
  return new FaultProxy({ url: new URL(options.upstream), agent }).listen();
}
