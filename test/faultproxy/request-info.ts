export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

/**
 * What the apiserver's RequestInfoFactory would make of a request. Absent parts are '' (as there),
 * so a match on `subresource: ''` means "the main resource only".
 */
export interface RequestInfo {
  method: string;
  path: string;
  /** False for discovery, /version, /healthz, /openapi...: then verb is the lower-cased method and the rest is ''. */
  resourceRequest: boolean;
  verb: Verb | string;
  apiGroup: string;
  apiVersion: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
  watch: boolean;
}

const METHOD_VERBS: Record<string, Verb> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
// like the apiserver: /namespaces/<ns>/status is the namespace's own subresource, not a resource called "status"
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

function isTrue(value: string | null): boolean {
  return value !== null && value !== 'false' && value !== '0';
}

/** `metadata.name=x` in a field selector makes a list or watch of one named object. */
function selectedName(fieldSelector: string | null): string {
  for (const term of (fieldSelector ?? '').split(',')) {
    const match = /^metadata\.name==?(.+)$/.exec(term.trim());
    if (match) return match[1]!;
  }
  return '';
}

export function requestInfo(method: string, url: string): RequestInfo {
  const { pathname, searchParams } = new URL(url, 'http://proxy');
  const base: RequestInfo = {
    method, path: pathname, resourceRequest: false, verb: method.toLowerCase(),
    apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '', watch: false,
  };
  let parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
  let apiGroup: string;
  if (parts[0] === 'api' && parts.length >= 3) {
    apiGroup = '';
    parts = parts.slice(1);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    apiGroup = parts[1]!;
    parts = parts.slice(2);
  } else {
    return base;
  }
  const apiVersion = parts[0]!;
  parts = parts.slice(1);
  let verb: string = METHOD_VERBS[method] ?? method.toLowerCase();
  let watch = false;
  if (parts[0] === 'watch') {
    watch = true;
    parts = parts.slice(1);
  }
  let namespace = '';
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1]!;
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
  }
  const [resource = '', pathName = '', subresource = ''] = parts;
  let name = pathName;
  watch ||= verb === 'get' && isTrue(searchParams.get('watch'));
  if (verb === 'get' && (watch || name === '')) {
    verb = watch ? 'watch' : 'list';
    name ||= selectedName(searchParams.get('fieldSelector'));
  }
  if (verb === 'delete' && name === '') verb = 'deletecollection';
  return { ...base, resourceRequest: true, verb, apiGroup, apiVersion, resource, subresource, namespace, name, watch };
}
