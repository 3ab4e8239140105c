// Package testbed runs a small Manta in one process, for the end-to-end
// tests, the CLI and crash tests, the benchmarks and rebalancer-demo.
//
// A Fleet is made of:
//
//   - one in-process Moray per metadata shard (moraytest), with the manta
//     bucket and, on shard 1, a manta_storage record per shark, so that
//     moray.LookupShark finds them;
//   - an in-process storinfo (storinfotest) reporting every shark's room;
//   - sharks named as in Manta ("1.stor.demo.example", datacenters "dc1",
//     "dc2"...), each a directory standing for its /manta, a file server
//     answering like mako, and a real agent.Server writing into that
//     directory;
//   - on request (Config.Buckets, which needs PostgreSQL), a buckets (v2)
//     tier: one in-process buckets-mdapi per buckets shard (mdapitest), its
//     data in a PostgreSQL database laid out as buckets-mdapi's, holding the
//     vnodes of a placement ring; PopulateBuckets writes objects where
//     buckets-api would put them and multipart uploads in progress, and the
//     mdapitest servers (Mdapi, SetMdapiHook, MdapiOffline...) are its
//     faults.
//
// Every server listens on a loopback port, but the code under test never
// sees one: Fleet.HTTPClient dials "{storage id}:80" to the shark's file
// server and "{storage id}:7878" to its agent, so the manager, the agents
// and the tests use the production names and URL shapes. The agents
// download through it too.
//
// With Config.ExternalAgents the fleet runs no agents: the caller runs
// rebalancer-agent processes over each Shark's Root and DataDir and
// registers where they listen with Shark.SetAgentAddr; ProxyHandler is a
// forward proxy through which such processes (--source-proxy,
// --agent-proxy) reach the fleet by the same names. internal/crashtest
// runs the real binaries this way.
//
// Populate writes objects quickly and reproducibly (content, base64 MD5 and
// metadata exactly as muskie would leave them), Verify checks the whole
// fleet from scratch after an evacuation (v2 objects and upload records
// too), Shark methods inject faults (a
// file server answering 500, a corrupt copy, an agent killed and
// restarted), and EngineConfig wires an evacuate.Engine to the fleet.
//
// Typical use in a test:
//
//	f := testbed.New(t, testbed.Config{Objects: testbed.Objects{Count: 500, Pin: "1.stor.demo.example"}})
//	e, err := f.NewEngine(ctx, nil)
//	...
//	rep, err := f.Verify(ctx, "1.stor.demo.example")
//	if err := rep.Err(); err != nil { t.Fatal(err) }
package testbed
