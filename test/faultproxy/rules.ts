import type { RequestInfo, Verb } from './request-info.js';

export interface Match<T extends RequestInfo = RequestInfo> {
  verb?: Verb | Verb[];
  resource?: string | string[];
  subresource?: string;
  namespace?: string;
  name?: string;
  predicate?: (info: T) => boolean;
}

export type StatusAction = { kind: 'status'; code: number; reason?: string; retryAfterSeconds?: number };
export type DelayAction = { kind: 'delay'; ms: number };
/** Never answers: the request stays open until the client gives up or the proxy closes. */
export type HangAction = { kind: 'hang' };
/** Passes a watch through, then destroys the connection afterMs after its response started. Matches watches only. */
export type CutWatchAction = { kind: 'cutWatch'; afterMs: number };
export type BasicAction = StatusAction | DelayAction | HangAction | CutWatchAction;
/** The action on a `probability` share of the matching requests; the others go on to later rules. */
export type RandomAction = { kind: 'random'; probability: number; action: BasicAction };
export type FaultAction = BasicAction | RandomAction;

export interface Rule {
  match: Match;
  /** Only the first N matching requests get the fault (default: all). */
  times?: number;
  action: FaultAction;
}

export interface RuleHandle {
  readonly rule: Rule;
  /** Requests this rule injected its fault into. */
  readonly hits: number;
  remove(): void;
}

const oneOf = <T>(wanted: T | T[] | undefined, actual: T) =>
  wanted === undefined || (Array.isArray(wanted) ? wanted.includes(actual) : wanted === actual);

export function matches<T extends RequestInfo>(match: Match<T>, info: T): boolean {
  return oneOf(match.verb as string | string[] | undefined, info.verb) && oneOf(match.resource, info.resource)
    && oneOf(match.subresource, info.subresource) && oneOf(match.namespace, info.namespace)
    && oneOf(match.name, info.name) && (match.predicate?.(info) ?? true);
}

class ActiveRule implements RuleHandle {
  hits = 0;
  constructor(readonly rule: Rule, readonly remove: () => void) {}

  /** The fault for this request, if the rule fires; a firing counts as a hit. */
  fire(info: RequestInfo): BasicAction | undefined {
    const { rule } = this;
    if (rule.times !== undefined && this.hits >= rule.times) return undefined;
    if (!matches(rule.match, info)) return undefined;
    const action = rule.action.kind === 'random' ? rule.action.action : rule.action;
    if (action.kind === 'cutWatch' && !info.watch) return undefined;
    if (rule.action.kind === 'random' && Math.random() >= rule.action.probability) return undefined;
    this.hits++;
    return action;
  }
}

/** Rules in the order they were added; the first one that fires decides a request's fault. */
export class RuleSet {
  private rules: ActiveRule[] = [];

  add(rule: Rule): RuleHandle {
    const active: ActiveRule = new ActiveRule(rule, () => { this.rules = this.rules.filter((r) => r !== active); });
    this.rules.push(active);
    return active;
  }

  clear(): void {
    this.rules = [];
  }

  faultFor(info: RequestInfo): BasicAction | undefined {
    for (const rule of this.rules) {
      const action = rule.fire(info);
      if (action) return action;
    }
    return undefined;
  }
}
