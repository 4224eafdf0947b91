import { readFileSync } from "node:fs";
import type { PeerCertificate, TLSSocket } from "node:tls";
import type { Config } from "../config.js";

/** A port's TLS material in PEM (structured-cloneable: the gRPC thread is given it). */
export interface TlsMaterial {
  cert: string;
  key: string;
  /** When set, clients must present a certificate this CA signed (mTLS). */
  clientCa: string | null;
}

export function readTlsMaterial(tls: Config["tls"]): TlsMaterial | null {
  if (!tls) return null;
  return {
    cert: readFileSync(tls.certFile, "utf8"),
    key: readFileSync(tls.keyFile, "utf8"),
    clientCa: tls.clientCaFile ? readFileSync(tls.clientCaFile, "utf8") : null,
  };
}

/** What names a caller in a verified client certificate: its subject CN, when it has one. */
export function certificateName(certificate: Partial<PeerCertificate> | undefined): string | undefined {
  const cn = certificate?.subject?.CN;
  return typeof cn === "string" && cn.length > 0 ? cn : undefined;
}

const names = new WeakMap<object, string | undefined>();

/**
 * The subject CN of the client certificate the port's CA verified on this connection, or
 * undefined (no TLS, no certificate, not verified). Read once per connection: getPeerCertificate()
 * builds a fresh object each time.
 */
export function verifiedCertificateName(socket: object): string | undefined {
  if (names.has(socket)) return names.get(socket);
  const tls = socket as Partial<TLSSocket>;
  const verified = tls.encrypted && tls.authorized && typeof tls.getPeerCertificate === "function";
  const name = verified ? certificateName(tls.getPeerCertificate?.()) : undefined;
  names.set(socket, name);
  return name;
}
