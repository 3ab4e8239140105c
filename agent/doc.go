// Package agent is the rebalancer agent, which runs on every storage node
// ("shark"), and the client the manager uses to talk to it.
//
// The manager groups the objects it moves by destination into assignments
// and posts each one to the agent on the destination shark. The agent
// downloads every object from a surviving copy on another shark, verifies
// its MD5, and moves it into the Manta root. The manager then polls the
// assignment and rewrites metadata only for the objects the agent reports
// copied. A bug here either loses data (a copy reported that is not on
// disk) or corrupts a storage node (a file written where it must not be),
// so the rules below come before speed.
//
// # API
//
// The HTTP API (port 7878 by default) and its JSON are exactly the legacy
// agent's, so legacy and Go managers and agents can be mixed during an
// upgrade. JSON types are the root package's.
//
//	POST   /assignments        body {"id":..,"tasks":[..]} or ["<id>",[..]]
//	                           200 "<id>" (JSON string, canonical form)
//	                           400 bad JSON, invalid id or task, duplicate object_id, body too large,
//	                               a source not in Config.AllowSources
//	                           408 body not received within Config.BodyTimeout (new)
//	                           409 id already known, whatever its state (checked before 503)
//	                           503 scheduled+running assignments >= Workers*50, or bodies being
//	                               read already take Config.MaxBodyBytesInFlight (new)
//	                           500 the assignment could not be saved (the id stays unknown)
//	GET    /assignments/{id}   200 {"uuid":..,"stats":{"state":..,"failed":n,"complete":n,"total":n}}
//	                           state "Scheduled", "Running", {"Complete":null} or
//	                           {"Complete":[failed tasks]}; 400 malformed id; 404 unknown
//	DELETE /assignments/{id}   200 (empty) for a completed assignment; 403 scheduled or
//	                           running; 404 unknown; 400 malformed id
//	GET    /assignments        new: a page of summaries, ?limit=&after=&state=
//	GET    /health             new: 200 {"status":"ok",..}; needs no token
//
// Ids are UUIDs, hyphenated or 32 hex digits in any case, and are
// canonicalised to lowercase hyphenated on every route. Error bodies are
// one line of plain text; legacy managers ignore them. Other methods on
// these paths get 405. A bearer token (Config.Token) can be required on
// the assignment routes; it is off by default because legacy managers
// send none. Metrics are served separately (Server.MetricsHandler, port
// 8878 by default) under the legacy names request_count, object_count,
// error_count, bytes_count and assignment_time, with the legacy constant
// labels, plus new rebalancer_agent_* series.
//
// Client implements rebalancer.Agent over this API, for either agent: a
// 503 wraps rebalancer.ErrAgentBusy, a 409 rebalancer.ErrAssignmentExists,
// a 404 on GET rebalancer.ErrAssignmentNotFound, other statuses are a
// *StatusError, and a request that got no reply wraps ErrUnreachable. It
// never retries: the manager owns the retry policy.
//
// # Processing
//
// Every task starts pending, whatever status the posted payload gave it:
// the agent reports only what it did itself. Config.Workers assignments
// run at once, in the order they were accepted, each with
// Config.WorkersPerAssignment downloads at once. For each task the agent:
//
//  1. validates the task again (its source against Config.AllowSources
//     too) and computes its destination: {root}/{owner}/{object_id}, or
//     for a buckets (v2) object
//     {root}/v2/{owner}/{bucket_id}/{object_id[0:2]}/{object_id},{object_name_hash};
//     a symbolic link, or a file where a directory belongs, on the way
//     fails the task with AgentFSError before the source is asked;
//  2. skips the download if the destination is already a regular file with
//     the expected MD5 (it is fsynced, then counted complete): files on
//     disk are the truth, so an assignment posted again after the agent
//     forgot it completes from what is already there;
//  3. downloads http://{source}/{same relative path}, accepting only 200:
//     404 fails the task with SourceObjectNotFound, another status with
//     HTTPStatusCode(n), a redirect included (sharks never redirect, and
//     the agent never follows one); a source that cannot be reached is
//     tried 4 times, 1s, 2s and 4s apart (Config.RetryDelays), then
//     SourceOtherError; a body that breaks off, stalls for
//     Config.DownloadTimeout, or arrives slower than Config.MinSourceRate
//     (4 KiB/s, measured over each Config.MinSourceRateWindow of a minute)
//     is SourceOtherError too (a network problem, not a disk one);
//  4. streams the body into a uniquely named file in {root}/.rebalancer-tmp,
//     hashing as it goes, and compares the MD5 (base64 of the raw digest)
//     exactly: a mismatch is MD5Mismatch;
//  5. fsyncs the file, creates the parent directories (fsyncing each new
//     one's parent), renames the file into place, and fsyncs the
//     directory. Any failure writing is AgentFSError.
//
// Only then is the task's result written to the database, and only once
// that write succeeded is it counted. On any failure the temp file is
// removed and an existing destination is left untouched.
//
// The last two steps are a group commit, so that a small object does not
// pay a directory fsync and a database transaction of its own: a worker
// that has renamed a file into place hands the task to the agent's
// committer and starts the next download. The committer takes every
// result waiting, from all running assignments (none waits for company:
// a lone result is committed at once), fsyncs each of their directories
// once, records them all in one transaction, and then counts them. A
// directory that cannot be fsynced fails every task of the batch in it
// (AgentFSError), and a batch that cannot be recorded leaves all of its
// tasks pending. An assignment is complete only once the committer has
// recorded all of its tasks.
//
// # On disk
//
//	{root}/.rebalancer-tmp/     partial downloads; emptied at startup. Same filesystem as
//	                            every destination, so the final rename is atomic. The
//	                            leading dot cannot be a valid owner, so it never collides.
//	{data-dir}/agent.db         SQLite (WAL): tables assignments and tasks. Completed
//	                            assignments are pruned after Config.Retention (14 days).
//	{data-dir}/agent.db.corrupt-{time}[-wal|-shm]
//	                            a state database that failed SQLite's quick_check at
//	                            startup, kept for inspection; the agent started afresh
//	                            (an error in the log says so).
//	{data-dir}/scheduled/, completed/
//	                            a legacy agent's per-assignment files: imported at startup
//	                            (queued work resumes, finished work stays visible to GET),
//	                            then moved to {data-dir}/legacy-imported/.
//
// # Safety rules
//
//   - Nothing but a complete, verified, fsynced file ever appears at a
//     destination path: downloads go to temp files and are renamed in.
//   - Nothing is written outside the root: every file operation under it
//     names a single path component (never "..", "." or empty) relative
//     to a directory the agent holds open, so no "..", absolute name or
//     symbolic link can lead out of it; and the agent does not write
//     through a symbolic link even inside the root: each directory is
//     opened without following a link at its last component
//     (O_NOFOLLOW|O_DIRECTORY), then used only by its descriptor
//     (fstatat, mkdirat, renameat: one system call each), and the commit
//     renames from the temp directory's descriptor into the destination
//     directory's, so no path is resolved again. (Where there are no *at
//     calls, an os.Root does the same checks.) A symbolic link found on
//     the way fails the task with AgentFSError and is logged as an error
//     with its path. A temp directory that is a symbolic link stops the
//     agent from starting.
//   - Every path component from a request is checked before anything is
//     written: owner, object_id and bucket_id may only hold letters,
//     digits, '.', '_' and '-', must not start with a dot and are at most
//     255 bytes (UUIDs and the legacy test names pass); object_name_hash
//     is 32 lowercase hex digits; the source storage id is a host name
//     with an optional port. The joined path is checked again to lie under
//     the root. A bad assignment gets 400 and nothing is stored.
//   - An assignment is reported complete only from a transaction that
//     finds every one of its tasks with a recorded final status. A result
//     that cannot be recorded (after retries) leaves the task pending and
//     the assignment unfinished; it runs again later, and the copy on disk
//     makes the redo cheap. A panic in a task is a failed task
//     (AgentFSError), never a silent success. A stored reason that cannot
//     be read back is reported as AssignmentError.
//   - A restarted agent resumes every scheduled and running assignment and
//     redoes only the tasks without a recorded result. On shutdown,
//     downloads in flight get Config.ShutdownGrace to finish; the rest are
//     abandoned (temp file removed, task left pending).
//   - Clients cannot hold the agent's memory or connections: a POST body
//     is at most Config.MaxBodyBytes (64 MiB), all bodies being read at
//     once at most Config.MaxBodyBytesInFlight (twice that; 503 beyond,
//     which managers retry), and it must arrive within Config.BodyTimeout
//     (2 minutes; 408). The server from APIServer disconnects a client
//     that takes more than Config.HeaderTimeout (10 s) to send its
//     headers, and kept-alive connections idle for Config.IdleTimeout (2
//     minutes). With Config.Token set, a client without the token is
//     refused before its body is read. Metric labels come from a fixed
//     set, never from request content.
//   - A state database that SQLite finds damaged at startup is moved aside
//     (kept, named with the time) and the agent starts with an empty one.
//     Nothing is lost but the memory of assignments: a manager re-posts an
//     assignment the agent no longer knows, and its files are found on
//     disk.
//
// A Server has no process-wide state: tests and the demo run several in
// one process, each with its own root, data directory and registry.
package agent
