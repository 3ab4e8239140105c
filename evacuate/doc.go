// Package evacuate runs evacuation jobs: an Engine takes every object off
// a shark through the root package's interfaces (rebalancer.ObjectSource,
// Placement, Agent, MetadataStore), and keeps each job's state in a Store,
// so that a restarted manager resumes its jobs where they stopped.
//
// A job goes through the five steps of the pipeline (see the root package)
// in stages that run concurrently, each in its own goroutines, and talk
// through the store:
//
//	discover ─► store (unprocessed) ─► feed: place, group per destination ─► post
//	   ─► poll ─► store (post_processing) ─► metadata ─► store (complete)
//
// The store is the queue between the stages, so memory stays flat however
// many objects a shark holds, and every object is where the store says it
// is at every moment. The steps, and where they are:
//
//  1. Discover (discover.go): the job's ObjectSource streams the objects on
//     the shark, recorded in batches as unprocessed, with a checkpoint per
//     shard to resume from; a retry job reads the objects its earlier job
//     did not move, with their metadata read again (retry.go).
//  2. Place (feed.go): the feeder reads unprocessed objects in discovery
//     order, picks the copy to read and the destination (Placement), and
//     groups objects into one assignment per destination; the flight
//     (flight.go) bounds what is in the air per job, destination and
//     source.
//  3. Copy (post.go, poll.go): each assignment is stored, posted to the
//     agent on its destination and polled until the agent reports it; a
//     reply that does not add up is not trusted, and failed copies are
//     placed again while attempts remain.
//  4. Update metadata (metadata.go): only for copies the agent reports
//     verified, the MetadataStore points the object at its new copy,
//     conditionally on its etag, in batches per shard when it can.
//  5. Account: every object ends complete, skipped or in error, moved in
//     the same store transaction as the job's exact counters; Status
//     (status.go) reads them, with rates (meter.go), and Metrics
//     (metrics.go) counts them for Prometheus.
//
// Engine (engine.go) runs any number of jobs at once, one per shark, each
// driven by a runner (runner.go) that also pauses, resumes and stops it;
// Options (options.go) are a job's tunables, checked against their
// documented ranges. The job store is internal (internal/jobstore); open
// one with package sqlitestore or pgstore, each of which links only its
// database's driver. Package jobapi serves the manager's HTTP API over an
// Engine.
package evacuate
