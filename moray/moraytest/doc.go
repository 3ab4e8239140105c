// Package moraytest is an in-process Moray for tests and the demo: a TCP
// server on a loopback port that speaks the real Fast protocol (package
// moray/fast) and implements the Moray RPCs the rebalancer uses, over an
// in-memory store. Engine tests, client tests and rebalancer-demo point
// their Moray client at Server.Addr instead of a real shard.
//
// # Faithful
//
// What the rebalancer depends on behaves as Moray 2.6.1 does (see
// docs/protocols.md, and the replayed cases of docs/golden.md):
//
//   - Framing: replies echo the request's protocol version, msgid and
//     method; one DATA frame per record, then END, or one ERROR whose data
//     is {name, message, context, info} with Moray's error names and
//     messages. Requests on a connection run concurrently and their replies
//     interleave.
//   - Values: Moray stores JSON.stringify of what node parsed, so numbers,
//     key order and string escapes are normalized the way node does, and
//     the etag is the old node crc module's CRC-32 of that text (Etag).
//     _id comes from a per-bucket sequence that never goes back, not even
//     for a rolled-back insert; _mtime is the write time in ms; _vnode is
//     value.vnode.
//   - putObject, delObject and batch apply Moray's etag rules (absent: no
//     check; null: must not exist; a string: must match), with the same
//     EtagConflictError; a batch is one transaction, and its top-level
//     options override each request's, so a top-level etag breaks every
//     put in it (the options-merge pitfall of docs/protocols.md).
//   - findObjects works in Moray's two stages: leaves on indexed fields and
//     on _id, _key, _etag and _mtime select rows (an error when none can:
//     InvalidQueryError or NotIndexedError); the rows are counted (_count),
//     sorted, cut by offset and limit (default 1000, also for limit 0), and
//     then the whole filter is re-checked in memory with JavaScript's
//     comparisons (package moray/filter). Unindexed leaves therefore shrink
//     pages without changing _count, as they do for real.
//   - Values are read back as Moray rebuilds them from a row: string and
//     boolean index columns are written over the value's fields, and
//     findObjects drops a value's own _id, _key, _etag, _mtime, _txn_snap
//     and _count fields.
//   - sql answers the statements sharkspotter sends, with rows typed as
//     node-pg returns them (BIGINT as strings, _value as JSON text), and
//     PostgreSQL's errors for a missing _idx column or table. Parameters
//     ($1, $2, ...) are bound to the values as node-pg and PostgreSQL bind
//     them, with the same errors. See the sql.go comment for the exact set
//     of statements.
//   - Error messages are Moray's, down to node's formatting of the lists
//     in a NotIndexedError (util.inspect: [ 'contentLength' ]).
//   - Arguments and options are validated as Moray's schemas do, with the
//     same InvocationError messages; an unknown method gets FastError with
//     info.fastReason "bad_method".
//
// # Strict
//
// A real Moray process crashes on some client mistakes, losing every
// connection's in-flight requests. moraytest does not crash: it records a
// violation, closes the offending connection, and goes on. Violations are
// a malformed frame (bad checksum, "d" not an array, bad JSON, version or
// msgid, too large), a connection closed in the middle of a frame, an END
// frame from the client, a msgid reused while its request is pending, and
// a getObject without options.noCache=true. Violations lists them; with
// Options.Strict (as Start sets it) each also fails the test.
//
// # Simplified
//
//   - The store is memory only. Index types are string, number and boolean;
//     unique indexes are rejected. Triggers are stored but never run.
//   - Without a sort, findObjects returns rows in _id order (PostgreSQL
//     promises no order). Text columns compare by bytes, as under the C
//     collation. A number-typed field is read back as the value had it
//     (what node-pg returns for NUMERIC was not observed); a field that is
//     not a number is stored as NULL in a number column.
//   - Every getObject without noCache is a violation, whereas the real
//     server only crashed when the key had been read in the last 30
//     seconds. A frame without m.name, or with an empty one, is a
//     violation too (Moray replies FastError bad_data).
//   - Lists in messages are laid out as node's util.inspect lays them out,
//     but counting every character one column wide, where node counts an
//     East Asian wide character two.
//   - options.timeout is ignored; _txn_snap is always null. updateBucket,
//     updateObjects, deleteMany, reindexObjects, listen, unlisten, batch
//     update and deleteMany operations, and findObjects with sql_only fail
//     with an InternalError saying so.
//
// # Faults
//
// Tests can make the server misbehave the way production does: a Hook sees
// every request and can answer it with an error, delay it, or drop the
// connection; FailNext, ConflictNextPuts and ConflictStorm are canned
// failures; Offline and Online make the server unreachable and bring it
// back on the same address. A concurrent writer is just a Put.
package moraytest
