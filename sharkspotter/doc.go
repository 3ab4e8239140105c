// Package sharkspotter finds every object that has a copy on a given shark
// (storage node): the discovery step of an evacuation. It provides two
// implementations of rebalancer.ObjectSource that scan the "manta" bucket of
// each metadata shard (v1 objects), two for buckets (v2) objects, and a way
// to run both kinds as one source (see Buckets below). For v1 objects:
//
//   - MorayScanner reads through each shard's Moray with the sql RPC, in
//     fixed windows of ids, exactly the statements the legacy sharkspotter
//     sends (so it works against any Moray, and against moraytest).
//   - PostgresScanner reads straight from PostgreSQL: the read-only copy of
//     each shard's "moray" database that pgclone provisions as
//     {N}.rebalancer-postgres.{domain}. It is much faster and puts no load on
//     the Moray tier.
//
// Both take their common settings (shards, workers, retries, exclusions,
// logging and progress) in an embedded Options. Both scan many shards at
// once with a bounded number of workers, and both
// hand objects to the caller's visit function from a single goroutine, each
// shard's objects in ascending id order. That order is what makes a scan
// resumable: the highest Object.ScanID visited per shard is a checkpoint, and
// DiscoverRequest.After (shard → that id) makes the next scan start after it.
//
// # Matching
//
// An object is on the shark when one element of the sharks array of its
// metadata value has that manta_storage_id. The scanners parse each candidate
// value (rebalancer.ParseObject) to decide; an object that lists the shark
// twice is visited once. Only rows of type "object" are read. To avoid
// parsing every value, a row is first checked for the storage id in quotes
// ("1.stor.example.com") as plain text; Moray stores values as node's
// JSON.stringify writes them, which never escapes the characters of a
// storage id, so a value without that text cannot list the shark.
// PostgresScanner pushes the same check into SQL (a LIKE), so PostgreSQL
// sends only candidate rows. Set Exhaustive to parse every row instead.
//
// Keys containing any of ExcludeKeyPrefixes (a substring match, as the
// legacy's exclude_key_prefixes; the single entry "none" disables it) are
// left out.
//
// # Ids
//
// Rows are ordered by _id. Shards migrated to Moray's extended ids keep newer
// rows' ids in a BIGINT _idx column with _id NULL; both scanners read both
// columns and merge them into one ascending sequence, so ScanID is the row's
// id from whichever column holds it.
//
// # Failures
//
// A shard that cannot be scanned (unreachable, missing table, a query
// failing after the configured retries) does not stop the other shards:
// Discover finishes them and then returns an error joining one *ShardError
// per failed shard. A row that names the shark but cannot be parsed is
// reported as a *RowError inside its shard's error, after the rest of the
// shard was scanned: silently skipping it would leave an object on a shark
// about to be retired. Transient failures (a dropped connection, Moray's
// NoDatabasePeersError) are retried from where the scan stopped.
//
// # Buckets
//
// Buckets (v2) objects live in buckets-mdapi shards, a PostgreSQL schema per
// vnode (docs/buckets-mdapi.md says what the code rests on):
//
//   - BucketsPostgresScanner reads each vnode's object table straight from
//     the buckets shards' read-only PostgreSQL copies
//     ({N}.rebalancer-buckets-postgres.{domain}), with the shark filter in
//     SQL;
//   - BucketsMdapiScanner lists them through buckets-mdapi's RPCs (a server
//     with listvnodes and listowners), bucket by bucket and vnode by vnode:
//     much slower, for where the copies are not reachable.
//
// Both make objects with mdapi.ObjectFromRecord (Key "v2/<vnode>/...",
// Shard the buckets shard), report the vnodes they find (OnVnodes, for
// mdapi.VnodeMap), refuse a vnode found on two shards, and number objects
// vnode<<40 + n: rows have no id, so a scan resumed from a checkpoint scans
// the checkpoint's vnode again, visiting again above the checkpoint what it
// visited below it, rather than trust a position that writes in between
// could shift.
//
// Multi runs a v1 and a v2 scanner as one source for a job. Both kinds number
// their shards from 1, so objects keep their own tier's Shard and are told
// apart by Key (KindOf), while checkpoints are keyed by CheckpointShard.
package sharkspotter
