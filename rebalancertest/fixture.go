package rebalancertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/TritonDataCenter/rebalancer"
)

// Shark is the storage id of the shark the suites evacuate.
const Shark = "1.stor.rebalancertest.example"

// Datacenter is the datacenter of every shark the suites name.
const Datacenter = "dc1"

// Owner is the account owning every object of the fixtures.
const Owner = "aa8a2c38-4a7a-4e5c-9d2f-1a6f4b1c7e3d"

// SharkNode returns the storage node with storage id n.stor.rebalancertest.example,
// in Datacenter: Shark is SharkNode(1).
func SharkNode(n int) rebalancer.StorageNode {
	return rebalancer.StorageNode{Datacenter: Datacenter, MantaStorageID: fmt.Sprintf("%d.stor.rebalancertest.example", n)}
}

// Shard is the content of one metadata shard that a harness stores before
// the suite runs.
type Shard struct {
	Number int
	// Objects are in the order they must be stored: an implementation that
	// numbers rows (ScanID) must number them in ascending order.
	Objects []StoredObject
}

// StoredObject is one metadata record.
type StoredObject struct {
	// Key is the key the record is stored under (Moray's _key); it is also
	// the value's "key".
	Key string
	// Value is the metadata, compact JSON as Moray stores it, for the
	// harness to store verbatim.
	Value json.RawMessage
	// Malformed marks a value that names the shark but is not a usable
	// object (no objectId). A harness whose backend cannot hold such a
	// value skips the test (t.Skip) when it is asked to store one.
	Malformed bool
}

// ObjectValue returns the metadata value of a v1 object as muskie writes
// it (compact, muskie's key order), with the given sharks. extra, when not
// empty, is more members (`"a":1,"b":[]`) put before "sharks".
func ObjectValue(key, objectID string, size int64, extra string, sharks ...rebalancer.StorageNode) json.RawMessage {
	var b bytes.Buffer
	name := key[strings.LastIndexByte(key, '/')+1:]
	dir := key[:max(strings.LastIndexByte(key, '/'), 0)]
	fmt.Fprintf(&b, `{"contentLength":%d,"contentMD5":"1B2M2Y8AsgTpgAmY7PhCfg==","contentType":"application/octet-stream",`+
		`"creator":%q,"dirname":%s,"etag":%q,"headers":{},"key":%s,"mtime":1570611723062,"name":%s,"objectId":%q,"owner":%q,`+
		`"roles":[],`, size, Owner, quote(dir), objectID, quote(key), quote(name), objectID, Owner)
	if extra != "" {
		b.WriteString(extra + ",")
	}
	b.WriteString(`"sharks":[`)
	for i, s := range sharks {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"datacenter":%s,"manta_storage_id":%s}`, quote(s.Datacenter), quote(s.MantaStorageID))
	}
	fmt.Fprintf(&b, `],"type":"object","vnode":%d}`, len(key)%1024)
	return b.Bytes()
}

// quote is a JSON string as node writes it: no escaping of <, > and &.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// sameJSON reports whether two JSON texts hold the same value (numbers
// compared as written).
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

// namesShard reports whether an error message names shard n.
func namesShard(err error, n int) bool {
	return err != nil && regexp.MustCompile(fmt.Sprintf(`\bshard %d\b`, n)).MatchString(err.Error())
}

// place is where an object is stored.
type place struct {
	shard int
	key   string
}

func (p place) String() string { return fmt.Sprintf("shard %d key %s", p.shard, p.key) }
