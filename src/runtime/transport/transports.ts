import { ArgumentError } from "../../errors.js";
import { TcpTransport } from "./transport-tcp.js";
import type { Transport, TransportName, TransportOptions } from "./transport.js";
import { WsTransport } from "./transport-ws.js";

/**
 * The default transport: raw TCP. Measured with bench/transport.ts on this machine's loopback
 * (see docs/ARCHITECTURE.md): it moves 1 MiB tensors faster than ws+bufferutil.
 */
export const DEFAULT_TRANSPORT: TransportName = "tcp";

/** Every transport cleave ships, by name. */
export const TRANSPORT_NAMES: readonly TransportName[] = ["tcp", "ws"];

/** A new transport of a name (default DEFAULT_TRANSPORT) with options. */
export function makeTransport(
  name: TransportName = DEFAULT_TRANSPORT,
  opts: TransportOptions = {},
): Transport {
  if (name === "ws" && opts.tls !== undefined)
    throw new ArgumentError("TLS is available on the tcp transport only (ws runs without it)", {
      field: "transport",
    });
  return name === "ws" ? new WsTransport(opts) : new TcpTransport(opts);
}
