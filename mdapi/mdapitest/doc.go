// Package mdapitest is an in-process buckets-mdapi for tests: a TCP server
// on a loopback port that speaks the real Fast protocol (package moray/fast)
// and serves the RPCs the rebalancer uses from a real PostgreSQL database
// laid out as buckets-mdapi's own schema manager lays it out. Client tests
// point an mdapi.Client at Server.Addr; discovery tests read the same
// database directly, as production discovery reads the buckets-postgres
// copies.
//
// # Faithful
//
// What the rebalancer depends on behaves as buckets-mdapi does
// (TritonDataCenter/manta-buckets-mdapi: master for Upstream, the branches
// MANTA-5484 and MANTA-5504 for the forks; see Version):
//
//   - Data: per vnode V a schema manta_bucket_V with the tables
//     manta_bucket, manta_bucket_object, their deleted_ twins and a
//     migrations ledger, with the server's column types (uuid ids, text[]
//     sharks as "<datacenter>:<storage id>", bytea content_md5, hstore
//     headers, jsonb properties, timestamptz times). The requests run the
//     same SQL the server runs.
//   - Framing: the server answers a connection's requests one after the
//     other, each reply whole (DATA frames and END, or one ERROR), always as
//     Fast version 2.
//   - Errors: application errors (ObjectNotFound, PreconditionFailedError,
//     LimitConstraintError, PostgresError...) come back, as from the real
//     server, as a DATA reply holding {"error":{"name":..,"message":..}};
//     a payload that does not decode, and an unknown RPC ("Unsupported
//     functon: ...", sic), as a Fast ERROR frame {"name":"FastError",
//     "message":..}.
//   - Payloads are decoded as the server's serde structs decode them; every
//     element of d must be a valid payload and the first is used.
//   - Conditions (if-match, if-none-match, if-modified-since,
//     if-unmodified-since) are checked as the server checks them, with the
//     object id as the etag, and the same messages.
//   - updateobject writes content type, headers and properties (and, on the
//     forks, sharks when given, and only if the id still matches);
//     batchupdateobjects (forks) runs one transaction per vnode and reports
//     {"failed_vnodes":[{"vnode","error","objects"}]}; listvnodes (Fork)
//     lists the schemas in text order; listowners (Fork) lists the owners
//     of a vnode's buckets (manta_bucket, not its objects).
//
// # Strict
//
// buckets-mdapi's Fast server finds the end of a request frame by
// re-serializing its payload with serde_json, not from the frame's length,
// so a payload written in another form (whitespace, other string escapes,
// duplicate keys, numbers serde_json prints differently) makes it lose the
// frame boundary and the connection. mdapitest checks every frame for that
// (SerdeLen) besides the usual Fast checks (checksum, JSON, version 2 only,
// sizes, no END or ERROR from a client, no connection closed mid-frame), and
// records each failure as a violation, closing the connection. With
// Options.Strict (as Start sets it) a violation also fails the test.
//
// # Simplified
//
//   - createobject, deleteobject, getbucket, createbucket, deletebucket,
//     getgcbatch and deletegcbatch answer with a FastError saying they are
//     not implemented; tests populate through the direct API instead
//     (CreateBucket, PutObject, PutUpload, Modify).
//   - A NULL headers or sharks column (which makes the real server fail)
//     reads as empty. A sharks element without a ':' (on which the real
//     server's row decoding panics) fails the request with a FastError. Header maps are written with sorted keys (the server's
//     order is a hash map's). Numbers in properties are written back as
//     PostgreSQL gives them.
//   - There is no PostgreSQL connection pool to exhaust; Overloaded is a
//     canned Fault with the error the server sends then.
//
// # Faults
//
// A Hook sees every request and can answer it with a Fault (an error in a
// DATA reply or an ERROR frame), delay it, or drop the connection;
// FailNext, ConflictNextUpdates and ConflictStorm are canned failures;
// Offline and Online make the server unreachable and bring it back on the
// same address; Modify is a concurrent writer. Calls counts requests per
// method.
package mdapitest
