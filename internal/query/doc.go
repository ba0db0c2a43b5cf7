// Package query answers compliance questions from the audit tables in
// ClickHouse: read-only SQL with bound parameters, the built-in reports in
// reports/, a session's timeline, and verification of every hash chain from
// the stored canonical events.
//
// Every connection is read-only twice over: it logs in as the read-only
// user through store.Dial's read-only connection, which, when the server
// says that account may still write (a misconfigured profile), sends
// readonly=2 with every query, so the account can change limits but never
// data. Statements are also checked on the client by chsql, the guard
// detection rules share: one read statement (SELECT, WITH, SHOW, DESCRIBE,
// EXISTS, EXPLAIN) and nothing after it.
//
// Parameters are bound by clickhouse-go's client-side binder (@name in the
// SQL, quoted and escaped by the driver), because the 18.16 server has no
// server-side {name:Type} parameters; values never reach the SQL text by
// concatenation.
package query
