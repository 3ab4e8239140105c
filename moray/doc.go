// Package moray is a client for Moray, the key/value service over sharded
// PostgreSQL that holds Manta's object metadata, and the rebalancer's
// MetadataStore built on it.
//
// A [Client] talks to one Moray endpoint over a small pool of TCP
// connections (package fast is the wire codec). Each connection carries many
// concurrent RPCs, matched to their replies by message id, so a handful of
// connections serve thousands of requests in flight. Connections are made on
// the first RPC and remade, with backoff, after a failure. [Shards] gives one
// Client per metadata shard, found through DNS ([DNSShards]) or a fixed map
// ([StaticShards]).
//
// A Moray server crashes on a malformed frame, on a connection closed in the
// middle of a frame, and on a getObject served from its cache. So every
// request is built whole and checked before it is written with a single
// Write; a cancelled context abandons the reply but never a frame half
// written; connections close only between frames; and getObject always sends
// noCache:true.
//
// # Reading, updating, scanning
//
// [Client.GetObject] returns a [Record]: the value exactly as stored (as
// json.RawMessage, so unknown fields and large integers survive) with its
// etag and id.
//
// [Client.PutObject] writes conditionally with an [EtagCondition]: [IfEtag]
// (the object must still have the etag that was read), [IfAbsent] (it must
// not exist), or the zero value (no condition). A failed condition is an
// [*EtagConflictError] carrying the expected and actual etags; it matches
// rebalancer.ErrEtagConflict, so the caller re-reads and tries again.
// [Client.Batch] applies several writes in one transaction, each with its own
// condition.
//
// [Client.FindObjects] and [Client.SQL] stream: the callback gets each record
// or row as it arrives and can stop the scan by returning an error. An error
// after some records means the scan is incomplete.
//
// # Errors
//
// Errors from the server are [*ServerError] (name, message, context and
// info as sent), or one of the specific types that wrap it:
// [*EtagConflictError], [*ObjectNotFoundError], [*BucketNotFoundError].
// Transport failures (refused, reset, closed mid-reply, no reply in time)
// match [ErrConnection]. [IsTransient] says whether an error is worth
// retrying.
//
// # The rebalancer's view
//
// [MetadataStore] implements rebalancer.MetadataStore for v1 objects (bucket
// "manta"): GetObject reads an object's metadata and etag; ReplaceShark
// rewrites its sharks array conditionally on that etag, changing one element
// and no other byte of the value; ReplaceSharks does the same for many
// objects of one shard in one atomic batch. [LookupShark] reads a storage
// node's datacenter from the manta_storage bucket.
package moray
