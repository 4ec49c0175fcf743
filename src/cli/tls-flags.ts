import { readFileSync } from "node:fs";
import { ArgumentError } from "../errors.js";
import type { TlsConfig } from "../runtime/transport/transport.js";
import { type ParsedFlags, str } from "./command.js";

/** TLS from --tls psk or --tls-cert/--tls-key[/--tls-ca]; undefined without them. */
export function tlsFlags(values: ParsedFlags["values"], token: string | undefined): TlsConfig | undefined {
  const mode = str(values, "tls");
  const cert = str(values, "tls-cert");
  const key = str(values, "tls-key");
  const ca = str(values, "tls-ca");
  if (mode !== undefined && mode !== "psk")
    throw new ArgumentError(`--tls: expected psk, got '${mode}' (certificates: --tls-cert and --tls-key)`, {
      field: "tls",
    });
  if (mode === "psk") {
    if (cert !== undefined || key !== undefined)
      throw new ArgumentError("--tls psk: give it or --tls-cert/--tls-key, not both", { field: "tls" });
    if ((token ?? "") === "")
      throw new ArgumentError("--tls psk: needs a token (--token or CLEAVE_TOKEN)", { field: "tls" });
    return { mode: "psk", token: token as string };
  }
  if (cert === undefined && key === undefined) {
    if (ca !== undefined)
      throw new ArgumentError("--tls-ca: needs --tls-cert and --tls-key", { field: "tls-ca" });
    return undefined;
  }
  if (cert === undefined || key === undefined)
    throw new ArgumentError("--tls-cert and --tls-key go together", {
      field: cert === undefined ? "tls-cert" : "tls-key",
    });
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ArgumentError(`--${flag}: cannot read ${path} (${(err as Error).message})`, {
        file: path,
        field: flag,
      });
    }
  };
  return {
    mode: "cert",
    cert: read("tls-cert", cert),
    key: read("tls-key", key),
    ...(ca !== undefined ? { ca: read("tls-ca", ca) } : {}),
  };
}
