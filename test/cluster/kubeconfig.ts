import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A kubeconfig authenticating with a client certificate of the local CA. */
export function clientCertKubeconfig(server: string, pkiDir: string, client: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: bloom-local
  cluster:
    server: ${server}
    certificate-authority: ${join(pkiDir, 'ca.crt')}
users:
- name: ${client}
  user:
    client-certificate: ${join(pkiDir, `${client}.crt`)}
    client-key: ${join(pkiDir, `${client}.key`)}
contexts:
- name: ${client}@bloom-local
  context: {cluster: bloom-local, user: ${client}}
current-context: ${client}@bloom-local
`;
}

/** A kubeconfig authenticating with a bearer token (e.g. a ServiceAccount's). */
export function tokenKubeconfig(server: string, caFile: string, user: string, token: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: bloom-local
  cluster: {server: ${server}, certificate-authority: ${caFile}}
users:
- name: ${user}
  user: {token: ${token}}
contexts:
- name: ${user}@bloom-local
  context: {cluster: bloom-local, user: ${user}}
current-context: ${user}@bloom-local
`;
}

/**
 * A kubeconfig for a plain-HTTP server that takes no credentials, like the fault proxy (test/faultproxy),
 * which authenticates upstream itself. client-node only talks plain HTTP with insecure-skip-tls-verify.
 */
export function plainHttpKubeconfig(server: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: plain-http
  cluster: {server: ${server}, insecure-skip-tls-verify: true}
users:
- name: anonymous
  user: {}
contexts:
- name: anonymous@plain-http
  context: {cluster: plain-http, user: anonymous}
current-context: anonymous@plain-http
`;
}

export function writeKubeconfig(path: string, content: string): string {
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}
