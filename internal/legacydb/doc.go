// Package legacydb reads the job databases of the legacy (Rust) rebalancer
// manager, so that its jobs can be imported into this project's job store.
// It only reads: see "Read-only" below.
//
// # What the legacy keeps
//
// The legacy manager keeps its jobs in PostgreSQL on its own zone. The
// database "rebalancer" has one table, jobs (id, action, state), with one
// row per job and nothing else: no shark, no timestamps, no link from a
// retry job to the job it retried. Each job has a database of its own, named
// by the job's uuid, with three tables:
//
//   - evacuateobjects: one row per object the job recorded (id, assignment,
//     the object's metadata as jsonb, shard, destination, etag, status, skip
//     reason, error);
//   - config: one row, id 1, whose from_shark is the evacuated shark;
//   - duplicates: object ids found under more than one key or shard.
//
// docs/legacy-jobs.md gives the exact DDL of both legacy releases, the
// spellings of every column and where each fact comes from.
//
// # Reading
//
// Open connects to the server; the URL names the jobs database (default
// "rebalancer"), and each job's database is reached on the same server with
// the same credentials. Reader.Jobs lists the jobs in creation order.
// Reader.OpenJob opens one job's database in a single read-only, repeatable
// read transaction, so that everything read through the returned JobDB
// (its objects, duplicates, shark and status counts) is one consistent
// snapshot even if something were still writing. Objects and duplicates are
// streamed a page at a time in id order, never held in memory as a whole,
// and a scan can resume after the last id it saw.
//
// Legacy spellings are mapped to the root package's types
// (rebalancer.ObjectStatus, SkipReason, ObjectErrorKind, JobState,
// JobAction), whose database spellings are the legacy's. A value that does
// not map, or that maps but would not be written back with the same
// spelling, or a NULL where the legacy always writes a value, is reported as
// a *ValueError naming the job, table, row and column; it is never dropped
// or replaced by a default. Such values cannot occur in a database the
// legacy wrote under its own CHECK constraints; they mean a damaged or
// hand-edited database, or one written by a legacy release newer than the
// ones described.
//
// # Legacy status
//
// JobDB.Results computes the "results" of the legacy's GET /jobs/{uuid}
// with the legacy's own queries and rules, and Reader.Status the whole
// document, so that an import can check that the imported job shows the
// same counts. StateAfterRestart gives the state the legacy manager shows
// for a job once it has restarted (it fails every job it finds running).
//
// # Read-only
//
// Reading must never change the legacy databases: they are the operator's
// only record of past jobs. Three things guarantee it:
//
//   - every session is opened with default_transaction_read_only=on, so the
//     server refuses any write, DDL included, in it;
//   - every read runs inside a transaction begun READ ONLY;
//   - the package issues only SELECTs, and never creates a database: unlike
//     the legacy, which creates a job database when connecting to it fails,
//     a missing job database is reported as ErrNoJobDatabase.
//
// A role with only CONNECT and SELECT privileges works too; Created times
// then stay unknown (they need pg_stat_file, see Job.Created).
package legacydb
