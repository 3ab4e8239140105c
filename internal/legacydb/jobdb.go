package legacydb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/TritonDataCenter/rebalancer"
)

// JobDB is one legacy job's database, read in a single read-only, repeatable
// read transaction: everything read through it is one snapshot. It is not
// safe for concurrent use; Close it when done. A failed query (as opposed
// to a *ValueError) ends the transaction, so the JobDB cannot be used
// further.
type JobDB struct {
	id       string
	db       *sql.DB
	tx       *sql.Tx
	pageSize int
}

// ID returns the job's uuid, which is also its database's name.
func (j *JobDB) ID() string { return j.id }

// Close ends the transaction and closes the connection.
func (j *JobDB) Close() error {
	j.tx.Rollback()
	return j.db.Close()
}

// wrap names the job and table in an error from a query.
func (j *JobDB) wrap(table string, err error) error {
	var ve *ValueError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve):
		return err
	case pq.As(err, pqerror.UndefinedTable) != nil:
		return fmt.Errorf("legacy job %s: database %q has no %s table (a job whose setup failed): %w", j.id, j.id, table, err)
	}
	return fmt.Errorf("legacy job %s: table %s: %w", j.id, table, err)
}

// FromShark reads the shark the job evacuates: the config table's
// from_shark. Until the legacy has looked the shark up, which happens when
// the job starts running, its datacenter is "" and its storage id is what
// the operator typed.
func (j *JobDB) FromShark(ctx context.Context) (rebalancer.StorageNode, error) {
	rows, err := j.tx.QueryContext(ctx, `SELECT id, from_shark FROM config ORDER BY id LIMIT 2`)
	if err != nil {
		return rebalancer.StorageNode{}, j.wrap("config", err)
	}
	defer rows.Close()
	var n int
	var id sql.NullInt64
	var raw sql.NullString
	for rows.Next() {
		n++
		if err := rows.Scan(&id, &raw); err != nil {
			return rebalancer.StorageNode{}, j.wrap("config", err)
		}
	}
	if err := rows.Err(); err != nil {
		return rebalancer.StorageNode{}, j.wrap("config", err)
	}
	bad := func(v sql.NullString, err error) (rebalancer.StorageNode, error) {
		return rebalancer.StorageNode{}, &ValueError{Job: j.id, Table: "config", Row: strconv.FormatInt(id.Int64, 10), Column: "from_shark", Value: shown(v), Err: err}
	}
	switch {
	case n == 0:
		return rebalancer.StorageNode{}, fmt.Errorf("legacy job %s: its config table has no row, so no shark", j.id)
	case n > 1:
		// The legacy reads "the first" row, which PostgreSQL does not define.
		return bad(raw, errors.New("the config table has more than one row; the legacy only ever writes row 1"))
	case !raw.Valid:
		return bad(raw, errNull)
	}
	node, err := parseShark([]byte(raw.String))
	if err != nil {
		return bad(raw, err)
	}
	return node, nil
}

// parseShark decodes from_shark as the legacy does (libmanta's
// MantaObjectShark): both fields present and strings, others ignored.
func parseShark(raw []byte) (rebalancer.StorageNode, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return rebalancer.StorageNode{}, errors.New("not a JSON object")
	}
	var node rebalancer.StorageNode
	for _, f := range []struct {
		name string
		dst  *string
	}{{"datacenter", &node.Datacenter}, {"manta_storage_id", &node.MantaStorageID}} {
		v, ok := fields[f.name]
		if !ok {
			return rebalancer.StorageNode{}, fmt.Errorf("missing %s", f.name)
		}
		if err := json.Unmarshal(v, f.dst); err != nil || string(v) == "null" {
			return rebalancer.StorageNode{}, fmt.Errorf("%s is not a string", f.name)
		}
	}
	return node, nil
}

// Object is one row of a legacy job's evacuateobjects table.
type Object struct {
	ID           string // the Manta objectId (the table's primary key)
	AssignmentID string // the assignment it was last part of; "" if never assigned
	// Object is the object's metadata as the legacy recorded it at
	// discovery (it never rewrites it), as PostgreSQL returns the jsonb:
	// every key and value kept, numbers exact, but keys reordered and
	// whitespace removed, as jsonb always does. v2 (buckets) objects carry
	// a bucket_id key.
	Object    json.RawMessage
	Shard     int    // the metadata shard (0 for bad_shard_number rows)
	DestShark string // the destination tried last; "" if none
	// Etag is the Moray _etag read at discovery; for a v2 object, the
	// object id (buckets-mdapi's conditional updates use it).
	Etag   string
	Status rebalancer.ObjectStatus
	// SkipReason and Error are zero when NULL. The legacy does not always
	// clear them when an object moves on, so a complete object can carry
	// either: they are reported as stored.
	SkipReason rebalancer.SkipReason
	Error      rebalancer.ObjectErrorKind
}

// Objects calls visit for each row of the job's evacuateobjects table whose
// id sorts after after ("" for all), in id order (the database's collation),
// a page at a time. An error from visit stops the scan and is returned. A
// row that cannot be represented stops the scan with a *ValueError; the
// rows before it have been visited.
func (j *JobDB) Objects(ctx context.Context, after string, visit func(Object) error) error {
	first := after == ""
	for {
		page, err := j.objectsPage(ctx, after, first)
		first = false
		for _, o := range page {
			if err := visit(o); err != nil {
				return err
			}
		}
		if err != nil {
			return j.wrap("evacuateobjects", err)
		}
		if len(page) < j.pageSize {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// The page queries take (after, limit, first): keyset pagination on the
// primary key keeps each query an index range scan, whatever the table's
// size. The first page has no lower bound, because comparing with the empty
// string would leave out a row whose id is empty, which the legacy writes
// for a value with an empty objectId. PostgreSQL plans each query with its
// parameters, so "$3 OR" folds away and the index is walked (TestPagePlans).
const (
	objectsPageQuery = `SELECT id, assignment_id, object, shard, dest_shark, etag, status, skipped_reason, error
		FROM evacuateobjects WHERE $3 OR id > $1 ORDER BY id LIMIT $2`
	duplicatesPageQuery = `SELECT id, key, shards IS NULL, shards::text
		FROM duplicates WHERE $3 OR id > $1 ORDER BY id LIMIT $2`
)

// objectsPage reads one page. A row that cannot be represented ends it with
// a *ValueError, after the rows before it.
func (j *JobDB) objectsPage(ctx context.Context, after string, first bool) ([]Object, error) {
	rows, err := j.tx.QueryContext(ctx, objectsPageQuery, after, j.pageSize, first)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := make([]Object, 0, j.pageSize)
	for rows.Next() {
		var id string
		var assignment, object, dest, etag, status, skip, oerr sql.NullString
		var shard sql.NullInt64
		if err := rows.Scan(&id, &assignment, &object, &shard, &dest, &etag, &status, &skip, &oerr); err != nil {
			return nil, err
		}
		o, err := j.object(id, assignment, object, shard, dest, etag, status, skip, oerr)
		if err != nil {
			return page, err
		}
		page = append(page, o)
	}
	return page, rows.Err()
}

func (j *JobDB) object(id string, assignment, object sql.NullString, shard sql.NullInt64, dest, etag, status, skip, oerr sql.NullString) (Object, error) {
	o := Object{ID: id}
	bad := func(col string, v sql.NullString, err error) (Object, error) {
		return Object{}, &ValueError{Job: j.id, Table: "evacuateobjects", Row: id, Column: col, Value: shown(v), Err: err}
	}
	for _, c := range []struct {
		name string
		v    sql.NullString
		dst  *string
	}{{"assignment_id", assignment, &o.AssignmentID}, {"dest_shark", dest, &o.DestShark}, {"etag", etag, &o.Etag}} {
		if !c.v.Valid {
			return bad(c.name, c.v, errNull)
		}
		*c.dst = c.v.String
	}
	if !object.Valid {
		return bad("object", object, errNull)
	}
	o.Object = json.RawMessage(object.String)
	if !shard.Valid {
		return bad("shard", sql.NullString{}, errNull)
	}
	o.Shard = int(shard.Int64)
	if !status.Valid {
		return bad("status", status, errNull)
	}
	st, err := rebalancer.ParseObjectStatus(status.String)
	if err != nil {
		return bad("status", status, err)
	}
	o.Status = st
	if skip.Valid {
		r, err := rebalancer.ParseSkipReason(skip.String)
		if err != nil {
			return bad("skipped_reason", skip, err)
		}
		// "{http_status_code:0404}" parses, but would be written back as
		// "{http_status_code:404}": not the value that was stored.
		if r.String() != skip.String {
			return bad("skipped_reason", skip, fmt.Errorf("not the legacy spelling (%q)", r.String()))
		}
		o.SkipReason = r
	}
	if oerr.Valid {
		k, err := rebalancer.ParseObjectErrorKind(oerr.String)
		if err != nil {
			return bad("error", oerr, err)
		}
		o.Error = k
	}
	return o, nil
}

// Duplicate is one row of a legacy job's duplicates table: an object id
// the job found more than once (under another key, or on another shard),
// and the shards it was found on. Shards is as stored: the legacy appends
// a shard each time it meets the id again, so numbers can repeat, and when
// both copies were in one assignment it records one shard only.
type Duplicate struct {
	ID     string
	Key    string
	Shards []int
}

// Duplicates calls visit for each row of the job's duplicates table, in id
// order, a page at a time. A job database without the table (the legacy
// then counts 0 duplicates) has none.
func (j *JobDB) Duplicates(ctx context.Context, visit func(Duplicate) error) error {
	ok, err := j.hasTable(ctx, "duplicates")
	if err != nil || !ok {
		return j.wrap("duplicates", err)
	}
	after, first := "", true
	for {
		page, err := j.duplicatesPage(ctx, after, first)
		first = false
		for _, d := range page {
			if err := visit(d); err != nil {
				return err
			}
		}
		if err != nil {
			return j.wrap("duplicates", err)
		}
		if len(page) < j.pageSize {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

func (j *JobDB) duplicatesPage(ctx context.Context, after string, first bool) ([]Duplicate, error) {
	rows, err := j.tx.QueryContext(ctx, duplicatesPageQuery, after, j.pageSize, first)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []Duplicate
	for rows.Next() {
		var id string
		var key, text sql.NullString
		var null bool
		if err := rows.Scan(&id, &key, &null, &text); err != nil {
			return nil, err
		}
		bad := func(col string, v sql.NullString, err error) ([]Duplicate, error) {
			return page, &ValueError{Job: j.id, Table: "duplicates", Row: id, Column: col, Value: shown(v), Err: err}
		}
		if !key.Valid {
			return bad("key", key, errNull)
		}
		if null {
			return bad("shards", text, errNull)
		}
		var shards []sql.NullInt64
		if err := pq.Array(&shards).Scan([]byte(text.String)); err != nil {
			return bad("shards", text, fmt.Errorf("not a one-dimensional array of shard numbers: %w", err))
		}
		d := Duplicate{ID: id, Key: key.String, Shards: make([]int, len(shards))}
		for i, s := range shards {
			if !s.Valid {
				return bad("shards", text, fmt.Errorf("element %d is NULL", i+1))
			}
			d.Shards[i] = int(s.Int64)
		}
		page = append(page, d)
	}
	return page, rows.Err()
}

func (j *JobDB) hasTable(ctx context.Context, table string) (bool, error) {
	var ok bool
	err := j.tx.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok)
	return ok, err
}

// Retried reports whether a retry job was ever started from this job. The
// legacy records no link between a retry job and the job it retries; the
// only trace a retry leaves is the index id_and_status that it creates on
// the retried job's evacuateobjects table (and leaves there). Which job
// was the retry cannot be told: a retry job's database looks like that of
// a new evacuation of the same shark.
func (j *JobDB) Retried(ctx context.Context) (bool, error) {
	var ok bool
	err := j.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_indexes
		WHERE schemaname = current_schema() AND tablename = 'evacuateobjects' AND indexname = 'id_and_status')`).Scan(&ok)
	return ok, j.wrap("evacuateobjects", err)
}
