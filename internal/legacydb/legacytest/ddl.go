package legacytest

import (
	"fmt"
	"strings"
)

// The DDL below is the legacy manager's, written from its sources in
// TritonDataCenter/monitor-reef, libs/rebalancer-legacy:
//
//   - manager/src/jobs/mod.rs, create_job_database: the jobs table;
//   - manager/src/jobs/evacuate.rs, create_evacuateobjects_table,
//     create_config_table, create_duplicate_table, build_skipped_strings,
//     and local_db_generator (the id_and_status index a retry adds);
//   - rebalancer/src/common.rs, ObjectSkippedReason; rebalancer/src/util.rs,
//     MIN_HTTP_STATUS_CODE (100) and MAX_HTTP_STATUS_CODE (600, exclusive).
//
// The CHECK lists are strum's snake_case spellings of the Rust enums, in
// declaration order, joined as the legacy joins them ("', '"). They differ
// between the two releases; the column lists and indexes do not.

// Release is a legacy manager release whose job databases differ.
type Release int

const (
	// Original is TritonDataCenter/manta-rebalancer as imported into
	// monitor-reef (its default branch): 14 named skip reasons, 9 errors.
	Original Release = iota
	// MANTA5484 is monitor-reef's branch MANTA-5484 (buckets, mdapi):
	// 17 named skip reasons, 15 errors.
	MANTA5484
)

func (r Release) String() string {
	if r == Original {
		return "original"
	}
	return "MANTA-5484"
}

// JobActions and JobStates are the CHECK lists of the jobs table (both
// releases).
var (
	JobActions = []string{"evacuate", "none"}
	JobStates  = []string{"init", "setup", "running", "stopped", "complete", "failed"}
)

// ObjectStatuses is the CHECK list of evacuateobjects.status (both
// releases).
var ObjectStatuses = []string{"unprocessed", "assigned", "skipped", "error", "post_processing", "complete"}

// SkipReasons returns the named skip reasons of a release's
// evacuateobjects.skipped_reason CHECK list, without the HTTP status codes.
func SkipReasons(r Release) []string {
	out := []string{
		"agent_fs_error", "agent_assignment_no_ent", "agent_busy", "assignment_error",
		"assignment_mismatch", "assignment_rejected", "destination_insufficient_space",
		"destination_unreachable", "md5_mismatch", "network_error", "object_already_on_dest_shark",
		"object_already_in_datacenter", "source_other_error",
	}
	if r == MANTA5484 {
		out = append(out, "source_object_not_found", "source_is_evac_shark", "mpu_part_no_data", "agent_assignment_timeout")
	} else {
		out = append(out, "source_is_evac_shark")
	}
	return out
}

// ObjectErrors returns the evacuateobjects.error CHECK list of a release.
func ObjectErrors(r Release) []string {
	out := []string{"bad_moray_client", "bad_moray_object", "bad_manta_object", "bad_shard_number",
		"duplicate_shark", "internal_error", "metadata_update_failed"}
	if r == MANTA5484 {
		out = append(out, "moray_update_failed", "moray_etag_mismatch", "moray_object_not_found",
			"mdapi_update_failed", "mdapi_etag_mismatch", "mdapi_object_not_found")
	}
	return append(out, "missing_sharks", "bad_content_length")
}

func checkList(values []string) string { return "'" + strings.Join(values, "', '") + "'" }

// JobsDDL creates the jobs table of the "rebalancer" database.
func JobsDDL() string {
	return fmt.Sprintf(`
            CREATE TABLE IF NOT EXISTS jobs(
                id TEXT PRIMARY KEY,
                action TEXT CHECK(action IN (%s)) NOT NULL,
                state TEXT CHECK(state IN (%s)) NOT NULL
            );
        `, checkList(JobActions), checkList(JobStates))
}

// JobDDL returns the statements that create a job database's tables, in
// the legacy's order: evacuateobjects and its index, config, duplicates.
func JobDDL(r Release) []string {
	skipped := SkipReasons(r)
	for code := 100; code < 600; code++ {
		skipped = append(skipped, fmt.Sprintf("{http_status_code:%d}", code))
	}
	return []string{
		fmt.Sprintf(`
            CREATE TABLE evacuateobjects(
                id TEXT PRIMARY KEY,
                assignment_id TEXT,
                object Jsonb,
                shard Integer,
                dest_shark TEXT,
                etag TEXT,
                status TEXT CHECK(status IN (%s)) NOT NULL,
                skipped_reason TEXT CHECK(skipped_reason IN (%s)),
                error TEXT CHECK(error IN (%s))
            );`, checkList(ObjectStatuses), checkList(skipped), checkList(ObjectErrors(r))),
		`CREATE INDEX assignment_id on evacuateobjects (assignment_id);`,
		`CREATE TABLE config(
        id Integer PRIMARY KEY,
        from_shark Jsonb
    );`,
		`CREATE TABLE duplicates(
        id TEXT PRIMARY KEY,
        key TEXT,
        shards Int[]
    );`,
	}
}

// RetryIndexDDL is what a legacy retry job does to the job it retries.
const RetryIndexDDL = `CREATE INDEX id_and_status on evacuateobjects (id, status);`
