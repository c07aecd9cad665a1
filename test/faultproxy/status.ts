import type { RequestInfo } from './request-info.js';

// metav1.StatusReason for the codes the apiserver itself answers with
const REASONS: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed',
  406: 'NotAcceptable', 409: 'Conflict', 410: 'Expired', 413: 'RequestEntityTooLarge', 415: 'UnsupportedMediaType',
  422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
};

export interface StatusOptions {
  code: number;
  reason?: string;
  message: string;
  retryAfterSeconds?: number;
}

/** A metav1.Status failure body, as client libraries expect on an error response (undefined fields are left out). */
export function statusBody(info: RequestInfo, options: StatusOptions): string {
  const details = info.resource === '' && options.retryAfterSeconds === undefined ? undefined : {
    ...(info.name !== '' && { name: info.name }),
    ...(info.apiGroup !== '' && { group: info.apiGroup }),
    ...(info.resource !== '' && { kind: info.resource }),
    ...(options.retryAfterSeconds !== undefined && { retryAfterSeconds: options.retryAfterSeconds }),
  };
  return JSON.stringify({
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure',
    message: options.message, reason: options.reason ?? REASONS[options.code], details, code: options.code,
  });
}
