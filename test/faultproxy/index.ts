export { startFaultProxy, FaultProxy, type FaultProxyOptions, type FaultKind, type RequestRecord, type RequestFilter } from './proxy.js';
export { startFaultProxyFor } from './cluster.js';
export type { Rule, RuleHandle, Match, FaultAction, BasicAction, StatusAction, DelayAction, HangAction, CutWatchAction, RandomAction } from './rules.js';
export { requestInfo, type RequestInfo, type Verb } from './request-info.js';
