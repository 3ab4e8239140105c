// Package storinfo knows how much room every storage node ("shark") has, and
// uses it to choose where evacuated objects go.
//
// Every shark runs minnow, which writes a heartbeat record (free space,
// percent used, datacenter) into Moray every few seconds; the storinfo
// service caches those records and serves them over HTTP, leaving out
// sharks that are too full or whose heartbeat is stale. This package has
// three layers, each usable alone:
//
//   - Client lists the fleet from storinfo (GET /storagenodes, paged as the
//     legacy rebalancer pages it) and looks up one shark, with retries.
//   - View polls a Client on an interval and keeps the last good Snapshot:
//     a failed refresh leaves the previous snapshot in place and is
//     reported by Status, rather than making the fleet look empty as it did
//     in the legacy rebalancer.
//   - Placement implements rebalancer.Placement on top of a View: the
//     legacy destination rules (never the evacuated shark or a shark with a
//     copy, the legacy datacenter rule, max fill, minimum free space,
//     blocklists), a random choice among the roomiest few for every object,
//     and an account of the bytes it has placed that storinfo does not show
//     yet, so that several jobs sharing one Placement cannot overfill a
//     shark between refreshes.
//
// A manager wires them as:
//
//	client, err := storinfo.NewClient(storinfo.ClientConfig{Domain: domain})
//	view := storinfo.NewView(storinfo.ViewConfig{Source: client})
//	go view.Run(ctx) // owned by the manager; stops with ctx
//	placement, err := storinfo.NewPlacement(storinfo.PlacementConfig{Snapshots: view})
//
// Package storinfotest provides an in-process storinfo with the real
// service's paging, for tests and the demo.
package storinfo
