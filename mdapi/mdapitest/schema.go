package mdapitest

import (
	"context"
	"fmt"
	"strings"
)

// The database layout is the one buckets-mdapi's schema manager creates
// (TritonDataCenter/manta-buckets-mdapi, schema_templates/schema.in and
// migrations/): the hstore extension, and for every vnode V a schema
// manta_bucket_V holding the live buckets and objects, their deleted
// counterparts, and the vnode's migration ledger. Discovery straight from
// PostgreSQL reads manta_bucket_V.manta_bucket_object; listowners reads
// manta_bucket_V.manta_bucket. The public schema's garbage-collection and
// operator helper functions are left out: nothing the rebalancer does reads
// them.

// vnodeSchema is the DDL of one vnode, with %[1]d standing for its number.
const vnodeSchema = `
CREATE SCHEMA IF NOT EXISTS manta_bucket_%[1]d;

CREATE TABLE IF NOT EXISTS manta_bucket_%[1]d.manta_bucket (
	id uuid NOT NULL,
	name text NOT NULL,
	owner uuid NOT NULL,
	created timestamptz NOT NULL DEFAULT current_timestamp,
	PRIMARY KEY (owner, name)
);

CREATE TABLE IF NOT EXISTS manta_bucket_%[1]d.manta_bucket_deleted_bucket (
	id uuid NOT NULL,
	name text NOT NULL,
	owner uuid NOT NULL,
	created timestamptz NOT NULL,
	deleted_at timestamptz NOT NULL DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS manta_bucket_%[1]d.manta_bucket_object (
	id uuid NOT NULL,
	name text NOT NULL,
	owner uuid NOT NULL,
	bucket_id uuid NOT NULL,
	created timestamptz NOT NULL DEFAULT current_timestamp,
	modified timestamptz NOT NULL DEFAULT current_timestamp,
	content_length bigint NOT NULL,
	content_md5 bytea NOT NULL,
	content_type text NOT NULL,
	headers hstore,
	sharks text[],
	properties jsonb,
	PRIMARY KEY (owner, bucket_id, name)
);

CREATE TABLE IF NOT EXISTS manta_bucket_%[1]d.manta_bucket_deleted_object (
	id uuid NOT NULL,
	name text NOT NULL,
	owner uuid NOT NULL,
	bucket_id uuid NOT NULL,
	created timestamptz NOT NULL,
	modified timestamptz NOT NULL,
	content_length bigint NOT NULL,
	content_md5 bytea NOT NULL,
	content_type text NOT NULL,
	headers hstore,
	sharks text[],
	properties jsonb,
	deleted_at timestamptz NOT NULL DEFAULT current_timestamp
);

CREATE INDEX IF NOT EXISTS idx_deleted_%[1]d ON manta_bucket_%[1]d.manta_bucket_deleted_object (deleted_at);
CREATE INDEX IF NOT EXISTS idx_id_%[1]d ON manta_bucket_%[1]d.manta_bucket_deleted_object (id);

CREATE TABLE IF NOT EXISTS manta_bucket_%[1]d.migrations (
	major integer,
	minor integer,
	applied timestamptz NOT NULL DEFAULT current_timestamp,
	note text,
	PRIMARY KEY (major, minor)
);
`

// CreateVnodes creates the schemas of vnodes that do not exist yet, as the
// schema manager does when a shard is given vnodes.
func (s *Server) CreateVnodes(ctx context.Context, vnodes ...uint64) error {
	var b strings.Builder
	b.WriteString("CREATE EXTENSION IF NOT EXISTS hstore;\n")
	for _, v := range vnodes {
		fmt.Fprintf(&b, vnodeSchema, v)
	}
	if _, err := s.db.ExecContext(ctx, b.String()); err != nil {
		return fmt.Errorf("mdapitest: create vnodes %v: %w", vnodes, err)
	}
	return nil
}
