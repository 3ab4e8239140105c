// Package rebalancer evacuates Manta storage nodes: it moves every object off
// a storage node ("shark") onto healthy sharks and rewrites the object
// metadata so that clients keep reading, without ever pointing metadata at a
// copy that was not verified on disk.
//
// This package holds the vocabulary and the small interfaces that the rest of
// the module plugs into. The binaries under cmd/ are compositions of them, and
// other Go tools can replace any part; package rebalancertest checks a
// replacement against its interface's contract.
//
// # How Manta stores an object
//
// Every object is kept as whole-file copies on two or more sharks, each
// serving /manta/{owner}/{objectId} over HTTP. Its metadata lives in Moray, a
// key/value service over sharded PostgreSQL, as a JSON value in the bucket
// "manta" whose sharks array lists the sharks holding a copy:
//
//	{"key":"/{owner}/stor/logs/a.log","objectId":"2e08b069-...","contentMD5":"L9Nr...==",
//	 "sharks":[{"datacenter":"dc0","manta_storage_id":"3.stor.example.com"},
//	           {"datacenter":"dc0","manta_storage_id":"1.stor.example.com"}], ...}
//
// # The evacuation pipeline
//
// An evacuation job takes one shark out of service in five steps:
//
//  1. Discover. An [ObjectSource] streams every object whose sharks array
//     names the shark, as an [Object] carrying its metadata verbatim (package
//     sharkspotter scans each metadata shard through Moray or straight from a
//     read-only PostgreSQL copy).
//  2. Place. A [Placement] picks a destination for each object: never the
//     evacuated shark, never a shark that already holds a copy, the legacy
//     datacenter rule, fill limits, blocklists (package storinfo).
//  3. Copy. Objects are grouped per destination into assignments
//     ([AssignmentPayload], a list of [Task]) and posted to the rebalancer
//     agent on that shark through the [Agent] interface. The agent downloads
//     each object from a surviving copy, verifies its MD5 and moves it into
//     place atomically (package agent).
//  4. Update metadata. Only for tasks the agent reports copied, a
//     [MetadataStore] replaces the evacuated shark in the object's sharks
//     array with the destination, conditional on the etag seen at discovery
//     (package moray). [ReplaceShark] does the rewrite and keeps every other
//     byte of the value as it was.
//  5. Account. Every object ends in one terminal [ObjectStatus]: complete,
//     skipped with a [SkipReason], or error with an [ObjectErrorKind].
//     Operators see live counts and can retry what did not move.
//
// Package evacuate runs these steps as jobs whose state is kept in a
// database, so a restarted manager resumes where it stopped; the four
// interfaces above are where it plugs into the rest of Manta.
//
// # Wire compatibility
//
// Fleets upgrade one node at a time, so Go and legacy (Rust) managers and
// agents must understand each other. The JSON encodings of [Task],
// [TaskStatus], [SkipReason], [AssignmentPayload], [AssignmentState],
// [Assignment], [JobState] and [JobAction] are byte for byte those of the
// legacy rebalancer: externally tagged enums such as "Pending",
// {"Failed":{"HTTPStatusCode":404}} and {"Complete":null}. Decoders accept
// both legacy payload shapes, and reject unknown enum values with an error
// rather than guessing a default.
//
// The database spellings (String methods and the Parse functions) are those of
// the legacy job database, so the legacy manager's jobs read back as they
// were written: "rebalancer-manager import-legacy" imports them into the
// job store with their statuses, skip reasons and errors.
package rebalancer
