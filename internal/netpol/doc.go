// Package netpol decides and enforces where a sandbox may connect.
//
// A sandbox has no network. Its only way out is this package's Proxy, one
// per session, listening on a Unix socket in a private directory that is
// bind-mounted into the container. Inside, the egress bridge (RunBridge,
// the container's main process) listens on 127.0.0.1:3128, where the
// sandbox's HTTP_PROXY points.
//
// The bridge does not relay. For each client connection it accepts, it
// passes the accepted socket's descriptor to the proxy over a fresh
// connection to the Unix socket (SCM_RIGHTS, with a marker byte), waits
// for the proxy's one-byte acknowledgement and closes its own copy. The
// proxy then serves the client's own socket, so bytes move client ↔ proxy
// ↔ upstream with one relay (splice), as on the proxy's Unix socket,
// instead of two: relaying in the bridge as well cost a third of the
// throughput on a two-core machine. The socket still lives in the
// sandbox's network namespace; reading and writing it from the host needs
// nothing from that namespace.
//
// The sandbox is untrusted and anything in it can connect to the socket,
// so the proxy takes only what a bridge would send: one descriptor per
// message, with the marker byte, that is a connected TCP socket (not a
// listener, not a Unix or datagram socket, not a file or pipe). Anything
// else, extra descriptors and truncated control messages included, is
// closed and refused with bad_request on the Unix connection, and
// recorded like any refusal. A connection that starts with plain bytes is
// served as an HTTP proxy connection, as before descriptor passing. A
// passed socket shares its file status flags with any copy the sender
// kept, so a sender could make it blocking behind the proxy's back;
// passedConn bounds every operation so the proxy's deadlines still hold.
// Every limit, time-out, byte count, SNI check and net.egress event
// applies to a passed socket exactly as to a Unix connection; it keeps
// the admission slot of the Unix connection that carried it. If the proxy
// does not take a socket, the bridge relays it byte for byte instead.
package netpol
