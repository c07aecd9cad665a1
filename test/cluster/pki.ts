import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Client identities of the local control plane: file stem, user name (CN) and groups (O). */
export const CLIENTS = {
  admin: { cn: 'bloom-admin', groups: ['system:masters'] },
  operator: { cn: 'bloom-operator-e2e', groups: ['system:masters'] },
  controllerManager: { cn: 'system:kube-controller-manager', groups: [] },
  scheduler: { cn: 'system:kube-scheduler', groups: [] },
  kwok: { cn: 'kwok-controller', groups: ['system:masters'] },
  kueue: { cn: 'kueue-controller-manager', groups: ['system:masters'] },
} as const;
export type ClientName = keyof typeof CLIENTS;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ecKey(dir: string, name: string): void {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
}

function signed(dir: string, name: string, subject: string, ext: string): void {
  ecKey(dir, name);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '365', '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
}

/**
 * Writes a CA, the API server's serving certificate (loopback only), one client
 * certificate per identity in CLIENTS and the service-account signing key pair.
 * Idempotent: an existing directory is kept.
 */
export function ensurePki(dir: string): void {
  if (existsSync(join(dir, 'sa.pub'))) return;
  mkdirSync(dir, { recursive: true });
  ecKey(dir, 'ca');
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=bloom-local-ca', '-days', '365', '-sha256',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.crt'], dir);
  signed(dir, 'apiserver', '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' +
    'extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  for (const [file, id] of Object.entries(CLIENTS)) {
    const subject = `/CN=${id.cn}` + id.groups.map((g) => `/O=${g}`).join('');
    signed(dir, file, subject, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  }
  ecKey(dir, 'sa');
  openssl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
}

/**
 * A serving certificate for 127.0.0.1 signed by the cluster CA of `pkiDir` (a webhook server on
 * loopback that the API server calls by URL): `name`.crt and `name`.key. Idempotent.
 */
export function ensureLoopbackServingCert(pkiDir: string, name: string): { cert: string; key: string } {
  const paths = { cert: join(pkiDir, `${name}.crt`), key: join(pkiDir, `${name}.key`) };
  if (!existsSync(paths.cert)) {
    signed(pkiDir, name, `/CN=${name}`, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  }
  return paths;
}
