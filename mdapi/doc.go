// Package mdapi is a client for buckets-mdapi, the service that holds the
// metadata of Manta's v2 (buckets) objects in sharded PostgreSQL, and the
// rebalancer's MetadataStore built on it. docs/buckets-mdapi.md tells what
// the rebalancer needs from buckets-mdapi and where each fact comes from.
//
// A [Client] talks to one buckets-mdapi endpoint (port 2030) over Fast, the
// protocol of package moray/fast, with the connection machinery of
// moray.Client: a small pool of connections, many requests in flight,
// frames written whole, connections closed only between frames. [Shards]
// gives one Client per buckets-mdapi shard, found through DNS
// ([DNSShards], the SRV records _buckets-mdapi._tcp.<host>) or a fixed map
// ([StaticShards]).
//
// Every request is one JSON object (d = [payload]) with a fresh request_id.
// buckets-mdapi's Fast server reads a request frame by re-serializing its
// payload with serde_json and trusting that length, not the frame's; a
// payload in any other form makes it lose the frame boundary and the
// connection. So this package writes payloads exactly as serde_json would
// (its own string escaping, no whitespace, integers only), and refuses what
// it cannot write so: see the json.go comment.
//
// # Objects and where they live
//
// An object is named by its owner, bucket id and name, and lives in one
// vnode, a schema manta_bucket_<vnode> on one shard; every RPC about it names
// the vnode. A [Locator] holds all four; the vnode is the one the object was
// found in, never recomputed. [Record] is an object's metadata as the server
// returns it.
//
// # RPCs
//
// [Client.GetObject]; [Client.UpdateObject], which writes an object's
// content type, headers and properties, and its sharks on servers that
// accept them, under [Conditions]; [Client.BatchUpdateObjects], one
// transaction per vnode; and the listings discovery needs:
// [Client.ListVnodes], [Client.ListOwners], [Client.ListBuckets] and
// [Client.ListObjects] (pages by name, with a marker), and
// [Client.WalkBuckets] and [Client.WalkObjects] over all pages.
//
// Upstream buckets-mdapi (TritonDataCenter/manta-buckets-mdapi, master)
// cannot move an object: its updateobject ignores sharks. Moving v2 objects
// needs the server of the branch MANTA-5484 (sharks in updateobject, and
// batchupdateobjects); MANTA-5504 adds listvnodes and listowners. Against a
// server without one of these, the client returns an [*UnsupportedError]
// (matching [ErrUnsupported]) rather than a success: for updateobject it
// checks that the record the server returns lists the sharks it sent.
//
// # Errors
//
// buckets-mdapi reports application errors in ordinary DATA replies,
// {"error":{"name":..,"message":..}}, and request errors (an unknown RPC, a
// payload it cannot decode) in Fast ERROR frames; both become a
// [*ServerError], or one of the specific types that wrap it:
// [*ObjectNotFoundError] (matching rebalancer.ErrObjectNotFound),
// [*PreconditionFailedError] (rebalancer.ErrEtagConflict),
// [*BucketNotFoundError], [*UnsupportedError]. A bare {"name","message"}
// item, the shape some clients expect, is understood too. A batch whose
// vnodes partly failed gives a [*BatchError]. Transport failures match
// [ErrConnection]; [IsTransient] says what is worth retrying.
//
// # The rebalancer's view
//
// [MetadataStore] implements rebalancer.BatchMetadataStore for v2 objects.
// [ObjectFromRecord] makes their rebalancer.Object: Key is [Locator.Key]
// ("v2/<vnode>/<owner>/<bucket_id>/<name>"), Shard the buckets-mdapi shard,
// Etag "<object id>@<modified>" ([Etag]), IsBucket true, and Metadata the
// record in the server's JSON form after the members key, objectId and
// vnode, so that rebalancer.ParseObject rebuilds the same Object.
// ReplaceShark rewrites one entry of the sharks and sends content type,
// headers and properties back exactly as read, on the condition that the
// object still has the id (if-match) and modification time
// (if-unmodified-since) it was read with: buckets-mdapi compares if-match
// with the object id only, which an update of its metadata does not change.
//
// # Placement and multipart uploads
//
// [Ring] computes the vnode buckets-api places a key in, and [VnodeMap]
// records which shard holds each vnode, as discovery finds them. They serve
// one purpose: [UploadFixer], which after the parts of a multipart upload
// moved off a shark rewrites the upload's record (.mpu-uploads/<id>, whose
// headers list the sharks every later part goes to and where the upload is
// assembled) to name their new shark, conditionally, changing nothing else.
package mdapi
