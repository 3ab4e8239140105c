package mdapitest

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"github.com/lib/pq/hstore"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// The direct API reads and writes the database without going through Fast:
// to populate a shard as buckets-api would have, and to play the other
// writers racing a client. It is safe to use while clients are connected.

// ErrNotFound is returned by the direct API for a missing object.
var ErrNotFound = errors.New("mdapitest: no such object")

// Object is an object's row in manta_bucket_<Vnode>.manta_bucket_object.
type Object struct {
	Vnode         uint64
	ID            string // object UUID; PutObject makes one when empty
	Owner         string // account UUID
	BucketID      string // bucket UUID
	Name          string
	Created       time.Time // zero: now
	Modified      time.Time // zero: now
	ContentLength int64
	ContentMD5    string             // base64 of the raw digest (stored as bytea)
	ContentType   string             // "" is stored as application/octet-stream
	Headers       map[string]*string // hstore; nil is stored as an empty map
	Sharks        []rebalancer.StorageNode
	Properties    json.RawMessage // jsonb; nil is NULL
}

// Bucket is a bucket's row in manta_bucket_<Vnode>.manta_bucket.
type Bucket struct {
	Vnode   uint64
	ID      string
	Owner   string
	Name    string
	Created time.Time
}

func objectTable(vnode uint64) string {
	return "manta_bucket_" + strconv.FormatUint(vnode, 10) + ".manta_bucket_object"
}

func bucketTable(vnode uint64) string {
	return "manta_bucket_" + strconv.FormatUint(vnode, 10) + ".manta_bucket"
}

const objectColumns = `id::text, owner::text, bucket_id::text, name, created, modified, content_length,
	content_md5, content_type, headers, sharks, properties`

type scanner interface{ Scan(dest ...any) error }

func scanObject(r scanner, vnode uint64) (Object, error) {
	o := Object{Vnode: vnode}
	var md5 []byte
	var h hstore.Hstore
	var sharks pq.StringArray
	var props []byte
	if err := r.Scan(&o.ID, &o.Owner, &o.BucketID, &o.Name, &o.Created, &o.Modified, &o.ContentLength,
		&md5, &o.ContentType, &h, &sharks, &props); err != nil {
		return Object{}, err
	}
	o.Created, o.Modified = o.Created.UTC(), o.Modified.UTC()
	o.ContentMD5 = base64.StdEncoding.EncodeToString(md5)
	if h.Map != nil {
		o.Headers = make(map[string]*string, len(h.Map))
		for k, v := range h.Map {
			if v.Valid {
				o.Headers[k] = &v.String
			} else {
				o.Headers[k] = nil
			}
		}
	}
	for _, s := range sharks {
		// As the server reads them: split at every ':', keep the first two
		// parts. It panics on an element without one.
		parts := strings.Split(s, ":")
		if len(parts) < 2 {
			return Object{}, &BadRowError{Vnode: vnode, Name: o.Name, Shark: s}
		}
		o.Sharks = append(o.Sharks, rebalancer.StorageNode{Datacenter: parts[0], MantaStorageID: parts[1]})
	}
	if props != nil {
		o.Properties = json.RawMessage(props)
	}
	return o, nil
}

// BadRowError reports a row the real server cannot read: a sharks element
// without a ':' makes its row decoding panic (buckets-mdapi src/object.rs,
// StorageNodeIdentifier). The RPCs answer it with a FastError.
type BadRowError struct {
	Vnode uint64
	Name  string
	Shark string
}

func (e *BadRowError) Error() string {
	return fmt.Sprintf("mdapitest: object %q in vnode %d has the shark %q without a ':', which buckets-mdapi cannot read",
		e.Name, e.Vnode, e.Shark)
}

func headersValue(h map[string]*string) hstore.Hstore {
	m := make(map[string]sql.NullString, len(h))
	for k, v := range h {
		if v != nil {
			m[k] = sql.NullString{String: *v, Valid: true}
		} else {
			m[k] = sql.NullString{}
		}
	}
	return hstore.Hstore{Map: m}
}

func sharksValue(sharks []rebalancer.StorageNode) pq.StringArray {
	out := pq.StringArray{}
	for _, s := range sharks {
		out = append(out, s.Datacenter+":"+s.MantaStorageID)
	}
	return out
}

func propertiesValue(p json.RawMessage) any {
	if p == nil {
		return nil
	}
	return string(p)
}

func timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// CreateBucket creates a bucket in a vnode, as createbucket would (with a
// new id when b.ID is empty), and returns it as stored.
func (s *Server) CreateBucket(ctx context.Context, b Bucket) (Bucket, error) {
	if b.ID == "" {
		b.ID = uuid.NewString()
	}
	q := `INSERT INTO ` + bucketTable(b.Vnode) + ` (id, name, owner, created) VALUES ($1, $2, $3, COALESCE($4, current_timestamp))
		RETURNING created`
	if err := s.db.QueryRowContext(ctx, q, b.ID, b.Name, b.Owner, timeValue(b.Created)).Scan(&b.Created); err != nil {
		return Bucket{}, fmt.Errorf("mdapitest: create bucket %s of %s in vnode %d: %w", b.Name, b.Owner, b.Vnode, err)
	}
	b.Created = b.Created.UTC()
	return b, nil
}

// PutObject writes an object's row, replacing any object of the same name
// in the same bucket (as createobject does, without keeping the old one),
// and returns it as stored.
func (s *Server) PutObject(ctx context.Context, o Object) (Object, error) {
	if o.ID == "" {
		o.ID = uuid.NewString()
	}
	if o.ContentType == "" {
		o.ContentType = "application/octet-stream"
	}
	md5, err := base64.StdEncoding.DecodeString(o.ContentMD5)
	if err != nil {
		return Object{}, fmt.Errorf("mdapitest: object %s: content MD5 %q is not base64", o.Name, o.ContentMD5)
	}
	q := `INSERT INTO ` + objectTable(o.Vnode) + ` AS o (id, owner, bucket_id, name, created, modified, content_length,
			content_md5, content_type, headers, sharks, properties)
		VALUES ($1, $2, $3, $4, COALESCE($5, current_timestamp), COALESCE($6, current_timestamp), $7, $8, $9, $10, $11, $12)
		ON CONFLICT (owner, bucket_id, name) DO UPDATE SET id = EXCLUDED.id, created = EXCLUDED.created,
			modified = EXCLUDED.modified, content_length = EXCLUDED.content_length, content_md5 = EXCLUDED.content_md5,
			content_type = EXCLUDED.content_type, headers = EXCLUDED.headers, sharks = EXCLUDED.sharks,
			properties = EXCLUDED.properties
		RETURNING ` + objectColumns
	row := s.db.QueryRowContext(ctx, q, o.ID, o.Owner, o.BucketID, o.Name, timeValue(o.Created), timeValue(o.Modified),
		o.ContentLength, md5, o.ContentType, headersValue(o.Headers), sharksValue(o.Sharks), propertiesValue(o.Properties))
	stored, err := scanObject(row, o.Vnode)
	if err != nil {
		return Object{}, fmt.Errorf("mdapitest: put object %s in vnode %d: %w", o.Name, o.Vnode, err)
	}
	return stored, nil
}

// GetObject reads an object's row; a missing one gives ErrNotFound.
func (s *Server) GetObject(ctx context.Context, vnode uint64, owner, bucketID, name string) (Object, error) {
	q := `SELECT ` + objectColumns + ` FROM ` + objectTable(vnode) + ` WHERE owner = $1 AND bucket_id = $2 AND name = $3`
	o, err := scanObject(s.db.QueryRowContext(ctx, q, owner, bucketID, name), vnode)
	if errors.Is(err, sql.ErrNoRows) {
		return Object{}, fmt.Errorf("vnode %d: %s/%s/%s: %w", vnode, owner, bucketID, name, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("mdapitest: get object %s in vnode %d: %w", name, vnode, err)
	}
	return o, nil
}

// Modify changes an object as another writer would (an updateobject from
// buckets-api): fn edits its content type, headers, sharks or properties,
// and the row gets them with a new modification time. It returns the object
// as stored.
func (s *Server) Modify(ctx context.Context, vnode uint64, owner, bucketID, name string, fn func(*Object)) (Object, error) {
	o, err := s.GetObject(ctx, vnode, owner, bucketID, name)
	if err != nil {
		return Object{}, err
	}
	fn(&o)
	q := `UPDATE ` + objectTable(vnode) + ` SET content_type = $1, headers = $2, sharks = $3, properties = $4,
			modified = GREATEST(clock_timestamp(), modified + interval '1 microsecond')
		WHERE owner = $5 AND bucket_id = $6 AND name = $7 RETURNING ` + objectColumns
	row := s.db.QueryRowContext(ctx, q, o.ContentType, headersValue(o.Headers), sharksValue(o.Sharks),
		propertiesValue(o.Properties), owner, bucketID, name)
	if o, err = scanObject(row, vnode); err != nil {
		return Object{}, fmt.Errorf("mdapitest: modify object %s in vnode %d: %w", name, vnode, err)
	}
	return o, nil
}

// DeleteObject removes an object's row; a missing one gives ErrNotFound.
func (s *Server) DeleteObject(ctx context.Context, vnode uint64, owner, bucketID, name string) error {
	r, err := s.db.ExecContext(ctx, `DELETE FROM `+objectTable(vnode)+` WHERE owner = $1 AND bucket_id = $2 AND name = $3`,
		owner, bucketID, name)
	if err != nil {
		return fmt.Errorf("mdapitest: delete object %s in vnode %d: %w", name, vnode, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("vnode %d: %s/%s/%s: %w", vnode, owner, bucketID, name, ErrNotFound)
	}
	return nil
}

// vnodes lists the vnode schemas that exist, in ascending order.
func (s *Server) vnodes(ctx context.Context) ([]uint64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT schema_name FROM information_schema.schemata
		WHERE left(schema_name, 13) = 'manta_bucket_'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		if v, err := strconv.ParseUint(strings.TrimPrefix(name, "manta_bucket_"), 10, 64); err == nil {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, rows.Err()
}

// Objects returns every object of every vnode, ordered by vnode, owner,
// bucket and name (bytewise).
func (s *Server) Objects(ctx context.Context) ([]Object, error) {
	vnodes, err := s.vnodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("mdapitest: list vnodes: %w", err)
	}
	var out []Object
	for _, v := range vnodes {
		rows, err := s.db.QueryContext(ctx, `SELECT `+objectColumns+` FROM `+objectTable(v)+
			` ORDER BY owner, bucket_id, name COLLATE "C"`)
		if err != nil {
			return nil, fmt.Errorf("mdapitest: objects of vnode %d: %w", v, err)
		}
		for rows.Next() {
			o, err := scanObject(rows, v)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("mdapitest: objects of vnode %d: %w", v, err)
			}
			out = append(out, o)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("mdapitest: objects of vnode %d: %w", v, err)
		}
	}
	return out, nil
}

// Multipart uploads. buckets-api keeps an upload's parts as ordinary
// objects named PartName(uploadID, n) in the upload's bucket, and its state
// in an "upload record", the zero-length object UploadRecordName(uploadID)
// whose headers hold the record as JSON (TritonDataCenter/manta-buckets-api,
// lib/s3-multipart.js): x-upload-record (the whole record, with
// preAllocatedSharks, the sharks chosen for every part), x-preallocated-sharks
// (that array alone), x-durability-level and x-upload-id. Its sharks column
// is empty and its properties {}.

// UploadRecordName is the name of an upload's record object.
func UploadRecordName(uploadID string) string { return ".mpu-uploads/" + uploadID }

// PartName is the name of part n of an upload.
func PartName(uploadID string, n int) string { return ".mpu-parts/" + uploadID + "/" + strconv.Itoa(n) }

// Upload describes a multipart upload in progress, for PutUpload.
type Upload struct {
	Vnode      uint64 // where the record goes
	Owner      string
	BucketID   string
	BucketName string // the bucket's name, as the record repeats it
	Key        string // the object being uploaded
	UploadID   string // "" makes one
	// PreAllocatedSharks are the sharks every part is written to.
	PreAllocatedSharks []rebalancer.StorageNode
	Durability         int       // 0: the number of preallocated sharks
	Initiated          time.Time // zero: now
}

// PutUpload writes an upload's record as buckets-api's
// InitiateMultipartUpload does, and returns the record object and the
// upload id. The preallocated sharks carry the extra fields storinfo gives
// them (zone, availableMB, percentUtilized, last_heartbeat, status).
func (s *Server) PutUpload(ctx context.Context, u Upload) (Object, string, error) {
	if u.UploadID == "" {
		u.UploadID = uuid.NewString()
	}
	if u.Durability == 0 {
		u.Durability = len(u.PreAllocatedSharks)
	}
	if u.Initiated.IsZero() {
		u.Initiated = time.Now()
	}
	type preallocated struct {
		Datacenter      string  `json:"datacenter"`
		MantaStorageID  string  `json:"manta_storage_id"`
		Zone            string  `json:"zone"`
		AvailableMB     int64   `json:"availableMB"`
		PercentUtilized float64 `json:"percentUtilized"`
		LastHeartbeat   string  `json:"last_heartbeat"`
		Status          string  `json:"status"`
	}
	sharks := make([]preallocated, len(u.PreAllocatedSharks))
	for i, sh := range u.PreAllocatedSharks {
		sharks[i] = preallocated{Datacenter: sh.Datacenter, MantaStorageID: sh.MantaStorageID,
			Zone: uuid.NewSHA1(uuid.NameSpaceDNS, []byte(sh.MantaStorageID)).String(), AvailableMB: 1 << 20,
			PercentUtilized: 12, LastHeartbeat: u.Initiated.UTC().Format("2006-01-02T15:04:05.000Z"), Status: "online"}
	}
	record := struct {
		UploadID           string         `json:"uploadId"`
		Bucket             string         `json:"bucket"`
		Key                string         `json:"key"`
		Account            string         `json:"account"`
		Initiated          string         `json:"initiated"`
		Parts              struct{}       `json:"parts"`
		Status             string         `json:"status"`
		DurabilityLevel    int            `json:"durabilityLevel"`
		PreAllocatedSharks []preallocated `json:"preAllocatedSharks"`
	}{u.UploadID, u.BucketName, u.Key, u.Owner, u.Initiated.UTC().Format("2006-01-02T15:04:05.000Z"),
		struct{}{}, "initiated", u.Durability, sharks}
	recordJSON, err := fast.MarshalData(record)
	if err != nil {
		return Object{}, "", err
	}
	sharksJSON, err := fast.MarshalData(sharks)
	if err != nil {
		return Object{}, "", err
	}
	str := func(s string) *string { return &s }
	o, err := s.PutObject(ctx, Object{
		Vnode: u.Vnode, Owner: u.Owner, BucketID: u.BucketID, Name: UploadRecordName(u.UploadID),
		ContentLength: 0, ContentMD5: "", ContentType: "application/json",
		Headers: map[string]*string{
			"x-upload-record":       str(string(recordJSON)),
			"x-durability-level":    str(strconv.Itoa(u.Durability)),
			"x-upload-id":           str(u.UploadID),
			"x-preallocated-sharks": str(string(sharksJSON)),
		},
		Sharks:     []rebalancer.StorageNode{},
		Properties: json.RawMessage(`{}`),
	})
	return o, u.UploadID, err
}
