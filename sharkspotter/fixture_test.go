package sharkspotter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
)

// A fixture is the content of a few shards' manta tables: objects on the
// shark being evacuated, on other sharks (some with confusingly similar
// ids), directories, objects listing the shark twice, odd metadata, and
// keys under an excluded prefix. Both backends' tests load it, one through
// moraytest and one into PostgreSQL.

const (
	owner       = "61368287-aa5b-6c0f-f3a9-931a228215e4"
	excludedDir = "/stor/logs/"
)

type fixtureRow struct {
	id       int64
	key      string
	value    string // compact JSON, as Moray stores it
	typ      string // "object" or "directory"
	want     bool   // lists the shark
	excluded bool   // its key is under excludedDir
}

// fixtureRows returns n rows for a shard, with ids from first.
func fixtureRows(shard int, first int64, n int) []fixtureRow {
	rows := make([]fixtureRow, 0, n)
	others := []string{"2.stor.example.com", "3.stor.example.com", "11.stor.example.com", testShark + ".evil"}
	for i := range n {
		id := first + int64(i)
		r := fixtureRow{id: id, typ: "object", key: fmt.Sprintf("/%s/stor/d%d/o-%d-%d", owner, i%10, shard, id)}
		sharks := []string{others[i%4], others[(i+1)%4]}
		extra := ""
		switch {
		case i%11 == 0:
			// A directory whose name is the shark's id: not an object.
			r.typ = "directory"
			r.key = fmt.Sprintf("/%s/stor/%s-%d", owner, testShark, id)
			r.value = fmt.Sprintf(`{"key":%q,"dirname":"/%s/stor","name":"%s-%d","owner":%q,"type":"directory","mtime":1570611723062,"headers":{},"roles":[],"vnode":%d}`,
				r.key, owner, testShark, id, owner, id%1024)
			rows = append(rows, r)
			continue
		case i%7 == 0:
			sharks = []string{testShark, testShark}
			r.want = true
		case i%5 == 0:
			sharks = []string{others[i%4], testShark}
			r.want = true
		case i%13 == 0:
			// Names the shark, but not in sharks.
			extra = `,"headers":{"m-copied-from":"` + testShark + `"}`
		case i%17 == 0:
			r.key = fmt.Sprintf("/%s%sd/o-%d-%d", owner, excludedDir, shard, id)
			sharks = []string{testShark, others[i%4]}
			r.want, r.excluded = true, true
		case i%19 == 0:
			r.key = fmt.Sprintf("/%s/stor/ünïcødé ☃ 'q' \"dq\" %d", owner, id)
			sharks = []string{others[i%4], testShark}
			extra = `,"contentLength":1152921504606846976,"x-unknown":{"nested":[1,2.5,"three",null,true]},"roles":["r1"]`
			r.want = true
		case i%23 == 0:
			sharks = nil // a zero-byte object
		}
		var sh []string
		for _, s := range sharks {
			sh = append(sh, fmt.Sprintf(`{"datacenter":"dc%d","manta_storage_id":%q}`, len(s)%3, s))
		}
		key, _ := json.Marshal(r.key)
		name := r.key[strings.LastIndex(r.key, "/")+1:]
		nameJSON, _ := json.Marshal(name)
		if !strings.Contains(extra, "contentLength") {
			extra += fmt.Sprintf(`,"contentLength":%d`, 1000+id)
		}
		r.value = fmt.Sprintf(`{"contentMD5":"L9NrIZXTY37AYVZN9+gZ7w==","contentType":"text/plain","creator":%q,"dirname":"/%s/stor/d%d",`+
			`"etag":"obj-%d-%d","key":%s,"mtime":1570611723062,"name":%s,"objectId":"obj-%d-%d","owner":%q,"sharks":[%s],"type":"object","vnode":%d%s}`,
			owner, owner, i%10, shard, id, key, nameJSON, shard, id, owner, strings.Join(sh, ","), id%1024, extra)
		rows = append(rows, r)
	}
	return rows
}

// wanted returns the keys the scan must find in rows.
func wanted(rows []fixtureRow, exclude bool) map[string]fixtureRow {
	out := map[string]fixtureRow{}
	for _, r := range rows {
		if r.want && !(exclude && r.excluded) {
			out[r.key] = r
		}
	}
	return out
}

// checkFound checks that objs are exactly the wanted rows of each shard,
// each once, with the row's id, etag and value. etags gives each row's
// stored etag by shard and key; sameValue compares values.
func checkFound(t *testing.T, objs []rebalancer.Object, want map[int]map[string]fixtureRow,
	etags map[int]map[string]string, sameValue func(got json.RawMessage, r fixtureRow) bool) {
	t.Helper()
	seen := map[int]map[string]bool{}
	for _, o := range objs {
		if seen[o.Shard] == nil {
			seen[o.Shard] = map[string]bool{}
		}
		if seen[o.Shard][o.Key] {
			t.Errorf("shard %d key %s visited twice", o.Shard, o.Key)
			continue
		}
		seen[o.Shard][o.Key] = true
		r, ok := want[o.Shard][o.Key]
		if !ok {
			t.Errorf("shard %d key %s (id %d) is not on the shark", o.Shard, o.Key, o.ScanID)
			continue
		}
		if o.ScanID != r.id || o.ID != fmt.Sprintf("obj-%d-%d", o.Shard, r.id) || o.Owner != owner {
			t.Errorf("shard %d key %s: ScanID %d ID %s owner %s, want %d obj-%d-%d", o.Shard, o.Key, o.ScanID, o.ID, o.Owner, r.id, o.Shard, r.id)
		}
		if e := etags[o.Shard][o.Key]; o.Etag != e {
			t.Errorf("shard %d key %s: etag %q, want %q", o.Shard, o.Key, o.Etag, e)
		}
		if !o.HasShark(testShark) {
			t.Errorf("shard %d key %s: sharks %v", o.Shard, o.Key, o.Sharks)
		}
		if !sameValue(o.Metadata, r) {
			t.Errorf("shard %d key %s: metadata\n%s\nwant\n%s", o.Shard, o.Key, o.Metadata, r.value)
		}
	}
	for shard, rows := range want {
		var missing []int64
		for k, r := range rows {
			if !seen[shard][k] {
				missing = append(missing, r.id)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("shard %d: %d objects not found, ids %v", shard, len(missing), missing[:min(len(missing), 20)])
		}
	}
}

// sameJSON compares two JSON texts as values (numbers compared as text).
func sameJSON(a, b []byte) bool {
	var x, y any
	da := json.NewDecoder(bytes.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(bytes.NewReader(b))
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// checkpoints returns the highest ScanID per shard, as the evacuate engine
// keeps them.
func checkpoints(objs []rebalancer.Object) map[int]int64 {
	after := map[int]int64{}
	for _, o := range objs {
		after[o.Shard] = max(after[o.Shard], o.ScanID)
	}
	return after
}
