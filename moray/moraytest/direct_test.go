package moraytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

func TestDirectAPI(t *testing.T) {
	s := Start(t)
	var fe *fast.Error
	if _, err := s.Put("manta", "/k", map[string]any{}); !errors.As(err, &fe) || fe.Name != "BucketNotFoundError" {
		t.Errorf("Put to a missing bucket: %v", err)
	}
	if err := s.CreateMantaBucket(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMantaBucket(); !errors.As(err, &fe) || fe.Name != "BucketConflictError" {
		t.Errorf("second CreateMantaBucket: %v", err)
	}
	if err := s.CreateBucket("x", BucketConfig{Options: json.RawMessage(`{`)}); err == nil {
		t.Error("CreateBucket with bad options succeeded")
	}
	if err := s.CreateBucket("y", BucketConfig{Index: []Index{{"a", "float"}}}); !errors.As(err, &fe) || fe.Name != "InvalidBucketConfigError" {
		t.Errorf("CreateBucket with a bad index type: %v", err)
	}

	// Every kind of value: a struct, raw JSON, a string of JSON.
	type v struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	e1, err := s.Put("manta", "/a", v{"a", 1})
	if err != nil || e1 != Etag([]byte(`{"name":"a","n":1}`)) {
		t.Errorf("Put struct: %s, %v", e1, err)
	}
	if _, err := s.Put("manta", "/b", json.RawMessage(`{"n": 2.50}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("manta", "/c", `{"n":3}`); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []any{`[1]`, 5, json.RawMessage(`{`)} {
		if _, err := s.Put("manta", "/bad", bad); err == nil {
			t.Errorf("Put(%v) succeeded", bad)
		}
	}
	o, err := s.Get("manta", "/b")
	if err != nil || string(o.Value) != `{"n":2.5}` || o.ID != 2 || o.Bucket != "manta" || o.Key != "/b" || o.Mtime == 0 {
		t.Errorf("Get: %+v, %v", o, err)
	}
	if _, err := s.Get("manta", "/zz"); !errors.As(err, &fe) || fe.Message != "manta::/zz does not exist" {
		t.Errorf("Get missing: %v", err)
	}
	if err := s.Delete("manta", "/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("manta", "/a"); !errors.As(err, &fe) || fe.Name != "ObjectNotFoundError" {
		t.Errorf("second Delete: %v", err)
	}
	var keys []string
	for o := range s.Objects("manta") {
		keys = append(keys, fmt.Sprint(o.Key, o.ID))
	}
	if fmt.Sprint(keys) != "[/b2 /c3]" || s.Len("manta") != 2 {
		t.Errorf("Objects: %v, Len %d", keys, s.Len("manta"))
	}
	for range s.Objects("manta") {
		break // stopping early is fine
	}
	for range s.Objects("nosuch") {
		t.Error("a missing bucket has objects")
	}
	if s.Len("nosuch") != 0 {
		t.Error("Len of a missing bucket")
	}
}

// Deleting many objects compacts the _id index without losing order.
func TestManyDeletes(t *testing.T) {
	s := Start(t)
	if err := s.CreateMantaBucket(); err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := range n {
		if _, err := s.Put("manta", fmt.Sprint("/k", i), map[string]any{"type": "object"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if i%5 != 0 {
			if err := s.Delete("manta", fmt.Sprint("/k", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var last int64
	count := 0
	for o := range s.Objects("manta") {
		if o.ID <= last || (o.ID-1)%5 != 0 {
			t.Fatalf("object %+v after _id %d", o, last)
		}
		last = o.ID
		count++
	}
	if count != n/5 {
		t.Errorf("%d objects left, want %d", count, n/5)
	}
	c := dial(t, s.Addr())
	recs := c.ok("findObjects", "manta", "(&(_id>=100)(_id<=200))", opts("sort", byID))
	if len(recs) != 20 { // 101, 106, ..., 196
		t.Errorf("window after deletes: %d records", len(recs))
	}
}

func TestClock(t *testing.T) {
	at := time.Date(2026, 11, 28, 8, 50, 29, 951e6, time.UTC)
	s, err := New(Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateMantaBucket(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.Addr())
	c.ok("putObject", "manta", "/k", map[string]any{}, opts())
	rec := decode[record](t, c.ok("getObject", "manta", "/k", opts())[0])
	if rec.Mtime != at.UnixMilli() {
		t.Errorf("_mtime %d, want %d", rec.Mtime, at.UnixMilli())
	}
	row := decode[map[string]string](t, c.ok("getBucket", opts(), "manta")[0])
	if row["mtime"] != "2026-11-28T08:50:29.951Z" {
		t.Errorf("bucket mtime %s", row["mtime"])
	}
}
