// Package rebalancertest checks implementations of the rebalancer's root
// interfaces against their documented contracts, in the manner of
// testing/fstest.TestFS: one suite per interface, run from the
// implementation's own tests.
//
//   - [TestObjectSource]: every object listing the shark visited once (also
//     one listing it twice), never concurrently, in ascending ScanID order
//     per shard; resuming after DiscoverRequest.After; visit's error
//     returned; cancellation honoured; failures reported naming the shard.
//   - [TestMetadataStore]: GetObject; ReplaceShark conditional on the etag,
//     changing the moved shark's entry and no other byte; ErrEtagConflict,
//     ErrObjectNotFound, ErrSharkNotListed; concurrent writers; and, for a
//     rebalancer.BatchMetadataStore, batches that are all or nothing.
//   - [TestPlacement]: never the evacuated shark, never a shark holding a
//     copy, never one to avoid; a *rebalancer.SkipError when nothing fits;
//     Release giving room back; concurrent use.
//   - [TestAgent]: post, get, delete; ErrAssignmentExists,
//     ErrAssignmentNotFound, ErrAgentBusy; every task reported, copied or
//     failed.
//
// Each suite takes a factory that builds the implementation over a fixture
// the suite chooses (objects on shards, a fleet of destinations, a source
// of objects to copy) and returns it in a harness, whose optional fields
// unlock the checks that need more than the interface (breaking a shard,
// deleting an object behind the store's back, stalling downloads). A check
// whose harness field is not set is skipped, saying which field it needs.
//
// The module runs every suite against every implementation it has: the
// sharkspotter scanners of both kinds and their combination (Multi),
// moray.MetadataStore, storinfo.Placement,
// agent.Client over a real agent, the examples' KeyListSource and Pinned,
// and the test fakes. An embedder's implementation of a root interface
// (a v2 metadata store, a custom source or placement) should pass the same
// suite before it is plugged into the engine.
//
// The suites use only the standard library's testing, so they can run from
// any package's tests; they report every violation with t.Errorf (and stop
// a check with t.Fatalf when it cannot go on), under subtests named after
// the rule they check.
package rebalancertest
