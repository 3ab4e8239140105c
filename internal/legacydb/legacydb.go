package legacydb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/TritonDataCenter/rebalancer"
)

// The legacy's connection conventions (manager/src/pg_db.rs): user and
// password "postgres", the jobs database "rebalancer", one database per job
// named by its uuid, all on the zone's own PostgreSQL, which has no TLS.
const (
	DefaultUser     = "postgres"
	DefaultDatabase = "rebalancer"
)

// DefaultPageSize is how many rows one query returns when streaming.
const DefaultPageSize = 1000

// connectTimeout bounds each connection attempt unless the URL sets
// connect_timeout: a legacy server that does not answer should fail the
// import, not hang it.
const connectTimeout = 10 * time.Second

var (
	// ErrJobNotFound is returned for a job id that has no row in the jobs
	// table.
	ErrJobNotFound = errors.New("no such legacy job")
	// ErrNoJobDatabase is returned for a job whose row exists but whose
	// database does not (the legacy answers GET /jobs/{uuid} with 400
	// "Could not find job UUID" then).
	ErrNoJobDatabase = errors.New("the legacy job's database does not exist")
)

// ValueError reports a value in a legacy database that this project cannot
// represent: an unknown enum spelling, a spelling that would not round-trip,
// a NULL where the legacy always writes a value, or a malformed value.
type ValueError struct {
	Job    string // the job's uuid, which is also its database's name
	Table  string // jobs, evacuateobjects, config or duplicates
	Row    string // the row's primary key
	Column string
	Value  string // the value as stored (shortened), or NULL
	Err    error  // why it cannot be represented
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("legacy job %s: %s row %q: column %s = %s: %v", e.Job, e.Table, e.Row, e.Column, e.Value, e.Err)
}

func (e *ValueError) Unwrap() error { return e.Err }

// shown is how a stored value appears in a ValueError.
func shown(v sql.NullString) string {
	if !v.Valid {
		return "NULL"
	}
	if r := []rune(v.String); len(r) > 80 {
		return fmt.Sprintf("%q...", string(r[:77]))
	}
	return fmt.Sprintf("%q", v.String)
}

var errNull = errors.New("NULL where the legacy always writes a value")

// Reader reads a legacy manager's jobs. It is safe for concurrent use.
type Reader struct {
	cfg pq.Config // the jobs database's; job databases differ only in Database
	db  *sql.DB

	// PageSize is how many rows one query returns when streaming objects
	// and duplicates (0: DefaultPageSize). Set it before reading.
	PageSize int
}

// Open connects to the legacy manager's PostgreSQL server. rawURL is a
// postgres:// URL naming the jobs database; what it leaves out gets the
// legacy's conventions rather than lib/pq's: user postgres, database
// rebalancer, sslmode=disable (unless PGSSLMODE is set), and a 10-second
// connect timeout. A password, if one is needed, can come from the URL,
// PGPASSWORD or ~/.pgpass. Every job's database is reached on the same
// server with the same parameters.
func Open(ctx context.Context, rawURL string) (*Reader, error) {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	r := &Reader{cfg: cfg, db: db}
	if err := r.checkJobsTable(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

// parseURL applies the legacy's defaults to a lib/pq URL.
func parseURL(rawURL string) (pq.Config, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return pq.Config{}, fmt.Errorf("legacy job database URL %q: want postgres://[user[:password]@]host[:port][/database][?param=value]", redact(rawURL))
	}
	cfg, err := pq.NewConfig(rawURL)
	if err != nil {
		return pq.Config{}, fmt.Errorf("legacy job database URL %s: %w", redact(rawURL), err)
	}
	q := u.Query()
	if (u.User == nil || u.User.Username() == "") && q.Get("user") == "" {
		cfg.User = DefaultUser
	}
	if strings.Trim(u.Path, "/") == "" && q.Get("dbname") == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.SSLMode == "" {
		cfg.SSLMode = pq.SSLModeDisable
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = "rebalancer-legacy-import"
	}
	if cfg.Runtime == nil {
		cfg.Runtime = map[string]string{}
	}
	// The server refuses every write in these sessions, whatever a
	// statement might try: the first of the package's read-only guarantees.
	cfg.Runtime["default_transaction_read_only"] = "on"
	return cfg, nil
}

// redact hides a password in a URL shown in an error.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

func openDB(cfg pq.Config) (*sql.DB, error) {
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("legacy database %s: %w", cfg.Database, err)
	}
	return sql.OpenDB(c), nil
}

// Close closes the connections to the jobs database.
func (r *Reader) Close() error { return r.db.Close() }

// Database returns the name of the jobs database.
func (r *Reader) Database() string { return r.cfg.Database }

func (r *Reader) pageSize() int {
	if r.PageSize > 0 {
		return r.PageSize
	}
	return DefaultPageSize
}

// readTx runs fn in a read-only transaction on db.
func readTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() // a read-only transaction has nothing to commit
	return fn(tx)
}

// checkJobsTable fails early, with a message that says what is wrong, when
// the URL does not lead to a legacy jobs table.
func (r *Reader) checkJobsTable(ctx context.Context) error {
	var found bool
	err := readTx(ctx, r.db, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `SELECT to_regclass('jobs') IS NOT NULL`).Scan(&found)
	})
	switch {
	case pq.As(err, pqerror.InvalidCatalogName) != nil:
		return fmt.Errorf("legacy jobs database %q does not exist on %s: %w", r.cfg.Database, r.server(), err)
	case err != nil:
		return fmt.Errorf("legacy jobs database %q on %s: %w", r.cfg.Database, r.server(), err)
	case !found:
		return fmt.Errorf("database %q on %s has no jobs table: not a legacy rebalancer jobs database", r.cfg.Database, r.server())
	}
	return nil
}

func (r *Reader) server() string {
	return fmt.Sprintf("%s:%d", r.cfg.Host, r.cfg.Port)
}

// Job is one row of the legacy jobs table.
type Job struct {
	ID     string
	Action rebalancer.JobAction
	State  rebalancer.JobState // as stored; see StateAfterRestart
	// HasDatabase says whether the job's own database exists.
	HasDatabase bool
	// Created is when the job's database was created, which the legacy
	// does when the job is posted: the modification time of the database's
	// PG_VERSION file, which PostgreSQL writes once at CREATE DATABASE. It
	// is zero when unknown (no database, or a role without the privilege
	// to call pg_stat_file).
	Created time.Time
	// Err is a *ValueError when the row's id, action or state cannot be
	// represented; the other fields are then partly zero.
	Err error

	oid uint32 // the job database's, which orders jobs by creation
}

// uuidRE matches the legacy's job ids: uuid::Uuid's hyphenated lower case.
var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Jobs lists every legacy job, in the order their databases were created
// (the legacy itself lists them in no particular order), jobs without a
// database last, by id. A row that cannot be represented is listed with
// Err set rather than left out.
func (r *Reader) Jobs(ctx context.Context) ([]Job, error) {
	return r.jobs(ctx, "")
}

// Job reads one job's row. An id without a row gives ErrJobNotFound.
func (r *Reader) Job(ctx context.Context, id string) (Job, error) {
	jobs, err := r.jobs(ctx, id)
	if err != nil {
		return Job{}, err
	}
	if len(jobs) == 0 {
		return Job{}, fmt.Errorf("legacy job %s: %w", id, ErrJobNotFound)
	}
	return jobs[0], nil
}

func (r *Reader) jobs(ctx context.Context, only string) ([]Job, error) {
	q := `SELECT j.id, j.action, j.state, COALESCE(d.oid::bigint, 0)
		FROM jobs j LEFT JOIN pg_database d ON d.datname = j.id`
	args := []any{}
	if only != "" {
		q += ` WHERE j.id = $1`
		args = append(args, only)
	}
	q += ` ORDER BY d.oid NULLS LAST, j.id`
	var out []Job
	err := readTx(ctx, r.db, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, action, state sql.NullString
			var oid int64
			if err := rows.Scan(&id, &action, &state, &oid); err != nil {
				return err
			}
			out = append(out, r.job(id, action, state, oid))
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("legacy jobs table in %q: %w", r.cfg.Database, err)
	}
	r.fillCreated(ctx, out)
	return out, nil
}

func (r *Reader) job(id, action, state sql.NullString, oid int64) Job {
	j := Job{ID: id.String, HasDatabase: oid != 0, oid: uint32(oid)}
	bad := func(col string, v sql.NullString, err error) Job {
		j.Err = &ValueError{Job: id.String, Table: "jobs", Row: id.String, Column: col, Value: shown(v), Err: err}
		return j
	}
	if !uuidRE.MatchString(id.String) {
		return bad("id", id, errors.New("not a lower-case uuid, so not the name of a legacy job database"))
	}
	if !action.Valid {
		return bad("action", action, errNull)
	}
	a, err := rebalancer.ParseJobAction(action.String)
	if err != nil {
		return bad("action", action, err)
	}
	j.Action = a
	if !state.Valid {
		return bad("state", state, errNull)
	}
	s, err := rebalancer.ParseJobState(state.String)
	if err != nil {
		return bad("state", state, err)
	}
	if s == rebalancer.JobPaused {
		// The project's own state, which the legacy never had.
		return bad("state", state, errors.New("not a state of the legacy rebalancer"))
	}
	j.State = s
	return j
}

// fillCreated sets Created where the server lets this role see it. It is
// best effort: pg_stat_file needs superuser or pg_read_server_files, which
// the legacy zone's postgres user has, and a job database in a tablespace
// other than pg_default has no base/ directory to look in.
func (r *Reader) fillCreated(ctx context.Context, jobs []Job) {
	var oids []int64
	for _, j := range jobs {
		if j.oid != 0 {
			oids = append(oids, int64(j.oid))
		}
	}
	if len(oids) == 0 {
		return
	}
	created := map[uint32]time.Time{}
	err := readTx(ctx, r.db, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT d.oid::bigint,
				(pg_stat_file('base/' || d.oid || '/PG_VERSION', true)).modification
			FROM pg_database d
			WHERE d.oid = ANY($1) AND d.dattablespace = (SELECT oid FROM pg_tablespace WHERE spcname = 'pg_default')`,
			pq.Array(oids))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var oid int64
			var t sql.NullTime
			if err := rows.Scan(&oid, &t); err != nil {
				return err
			}
			if t.Valid {
				created[uint32(oid)] = t.Time.UTC()
			}
		}
		return rows.Err()
	})
	if err != nil {
		return // unknown, as documented
	}
	for i := range jobs {
		jobs[i].Created = created[jobs[i].oid]
	}
}

// OrphanDatabases lists the databases on the server that are named like a
// legacy job but have no row in the jobs table, in creation order. The
// legacy creates a job's database before it inserts the job's row, and
// leaves the database behind when that insert fails; such a job never ran
// and never showed in GET /jobs.
func (r *Reader) OrphanDatabases(ctx context.Context) ([]string, error) {
	var out []string
	err := readTx(ctx, r.db, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT d.datname FROM pg_database d
			WHERE d.datname ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
			AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.datname)
			ORDER BY d.oid`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			out = append(out, name)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("legacy job databases on %s: %w", r.server(), err)
	}
	return out, nil
}

// OpenJob opens the database of a job listed in the jobs table, in one
// read-only, repeatable read transaction that lasts until Close. A job
// without a row gives ErrJobNotFound, one without a database
// ErrNoJobDatabase.
func (r *Reader) OpenJob(ctx context.Context, id string) (*JobDB, error) {
	j, err := r.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Err != nil {
		return nil, j.Err
	}
	return r.openJobDB(ctx, j.ID)
}

func (r *Reader) openJobDB(ctx context.Context, id string) (*JobDB, error) {
	cfg := r.cfg.Clone()
	cfg.Database = id
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	// One snapshot needs one connection.
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		db.Close()
		if pq.As(err, pqerror.InvalidCatalogName) != nil {
			return nil, fmt.Errorf("legacy job %s: database %q: %w", id, id, ErrNoJobDatabase)
		}
		return nil, fmt.Errorf("legacy job %s: database %q: %w", id, id, err)
	}
	return &JobDB{id: id, db: db, tx: tx, pageSize: r.pageSize()}, nil
}
