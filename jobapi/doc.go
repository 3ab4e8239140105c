// Package jobapi is the rebalancer manager's job API: Server serves it
// over an evacuate.Engine, and Client, used by rebalancer-adm, talks to it.
// The wire types (CreateRequest, Job, JobStatus, Object, ...) are defined
// here once, for both.
//
// The legacy routes keep the legacy manager's status codes and bodies, so
// that existing scripts and the legacy rebalancer-adm keep working against
// a Go manager, and Client reads a legacy manager's replies; the other
// routes are new. docs/api.md documents every route, status and body.
//
//	POST /jobs                    create (legacy body; 200 "<uuid>\n")
//	GET  /jobs                    list
//	GET  /jobs/{uuid}             status
//	PUT  /jobs/{uuid}             {"action":"set_metadata_threads","params":N}
//	POST /jobs/{uuid}/retry       retry what did not complete (200 "<uuid>\n")
//	POST /jobs/{uuid}/stop        new: stop after the copies in flight
//	POST /jobs/{uuid}/pause       new
//	POST /jobs/{uuid}/resume      new
//	GET  /jobs/{uuid}/objects     new: ?status=skipped&limit=100&after=<seq>
//	GET  /health                  new: 503 while the job store fails
//	GET  /sharks                  new: every shark's state (sharks.go)
//	GET  /sharks/{shark}          new
//	POST /sharks/{shark}/out      new: take it out of service
//	POST /sharks/{shark}/in       new: put it back in service
//	GET  /sharks/{shark}/check    new: is it safe to retire? (lines of JSON)
//	GET  /, /ui/jobs/{uuid}       new: the status pages (HTML; page.go)
package jobapi
