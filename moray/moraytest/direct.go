package moraytest

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// The direct API reads and writes the store without going through Fast,
// for seeding data and for playing the concurrent writer. It has the same
// semantics as the RPCs (etags, _id sequence, index columns) and is safe to
// use while clients are connected. Errors are *fast.Error values named as
// Moray names them (BucketNotFoundError, ObjectNotFoundError, ...).

// Index is one indexed field of a bucket.
type Index struct {
	Name string
	Type string // "string", "number" or "boolean"
}

// BucketConfig describes a bucket for CreateBucket.
type BucketConfig struct {
	Index []Index // in order: getBucket reports them in this order
	// Options is the bucket's options object, e.g. {"version":2}; nil is
	// {}. Like Moray, moraytest stores a version of 0 when none is given.
	Options json.RawMessage
	// ExtendedIDFrom, when positive, gives the bucket's table the "_idx"
	// column of Moray's extended-id migration, and stores the ids of rows
	// from this _id on in it (with _id NULL). findObjects is unaffected
	// (_id spans both columns); the sql RPC sees both columns, as
	// sharkspotter's "_idx" pass does. No wire RPC can create this.
	ExtendedIDFrom int64
}

// CreateBucket creates a bucket, as createBucket does.
func (s *Server) CreateBucket(name string, cfg BucketConfig) error {
	conf := jsObj()
	index := jsObj()
	for _, ix := range cfg.Index {
		def := jsObj()
		def.set("type", jsStr(ix.Type))
		index.set(ix.Name, def)
	}
	conf.set("index", index)
	if len(cfg.Options) > 0 {
		o, err := parseJS(cfg.Options)
		if err != nil {
			return fmt.Errorf("moraytest: bucket %s options: %w", name, err)
		}
		conf.set("options", o)
	}
	spec, ferr := parseBucketConfig(conf)
	if ferr != nil {
		return ferr
	}
	spec.extFrom = cfg.ExtendedIDFrom
	if err := s.store.createBucket(name, spec); err != nil {
		return err
	}
	return nil
}

// CreateMantaBucket creates the "manta" bucket as node-libmanta does: the
// string indexes dirname, name, owner, objectId and type, options
// {"version":2}. (The real bucket also has a post trigger, recordDeleteLog,
// which moraytest neither stores nor runs.)
func (s *Server) CreateMantaBucket() error {
	return s.CreateBucket("manta", BucketConfig{
		Index: []Index{
			{"dirname", "string"}, {"name", "string"}, {"owner", "string"},
			{"objectId", "string"}, {"type", "string"},
		},
		Options: json.RawMessage(`{"version":2}`),
	})
}

// CreateStorageBucket creates "manta_storage", where minnow keeps one
// record per shark (see AddShark).
func (s *Server) CreateStorageBucket() error {
	return s.CreateBucket("manta_storage", BucketConfig{
		Index: []Index{
			{"hostname", "string"}, {"manta_compute_id", "string"}, {"manta_storage_id", "string"},
			{"server_uuid", "string"}, {"zone_uuid", "string"},
			{"availableMB", "number"}, {"percentUsed", "number"}, {"timestamp", "number"},
		},
	})
}

// Shark is a storage node's capacity report, as minnow writes it.
type Shark struct {
	rebalancer.StorageNode
	AvailableMB int64
	PercentUsed int
	Timestamp   time.Time // zero means now
}

// AddShark writes the minnow record of a shark into "manta_storage"
// (create it with CreateStorageBucket first), under the key
// manta_storage_id, with a plain put as minnow does. The value has every
// field minnow writes; the ids it does not know (server and zone uuids)
// are derived from the storage id.
func (s *Server) AddShark(sh Shark) error {
	ts := sh.Timestamp
	if ts.IsZero() {
		ts = s.store.now()
	}
	const mb = 1 << 20
	total := int64(math.Ceil(float64(sh.AvailableMB) * 100 / math.Max(1, float64(100-sh.PercentUsed))))
	id := sh.MantaStorageID
	uuid := func(salt string) string {
		h := sha1.Sum([]byte(salt + id))
		return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
	}
	type statvfs struct {
		Bsize   int64  `json:"bsize"`
		Frsize  int64  `json:"frsize"`
		Blocks  int64  `json:"blocks"`
		Bfree   int64  `json:"bfree"`
		Bavail  int64  `json:"bavail"`
		Files   int64  `json:"files"`
		Ffree   int64  `json:"ffree"`
		Favail  int64  `json:"favail"`
		Fsid    int64  `json:"fsid"`
		Basetyp string `json:"basetype"`
		Flag    int64  `json:"flag"`
		Namemax int64  `json:"namemax"`
		Fstr    string `json:"fstr"`
	}
	value := struct {
		AvailableMB    int64   `json:"availableMB"`
		PercentUsed    int     `json:"percentUsed"`
		Filesystem     string  `json:"filesystem"`
		Statvfs        statvfs `json:"statvfs"`
		Timestamp      int64   `json:"timestamp"`
		Hostname       string  `json:"hostname"`
		Datacenter     string  `json:"datacenter"`
		ServerUUID     string  `json:"server_uuid"`
		ZoneUUID       string  `json:"zone_uuid"`
		MantaComputeID string  `json:"manta_compute_id"`
		MantaStorageID string  `json:"manta_storage_id"`
	}{
		AvailableMB: sh.AvailableMB,
		PercentUsed: sh.PercentUsed,
		Filesystem:  "/manta",
		Statvfs: statvfs{
			Bsize: mb, Frsize: mb, Blocks: total, Bfree: sh.AvailableMB, Bavail: sh.AvailableMB,
			Files: total * 1024, Ffree: sh.AvailableMB * 1024, Favail: sh.AvailableMB * 1024,
			Basetyp: "zfs", Flag: 4, Namemax: 255, Fstr: "",
		},
		Timestamp:      ts.UnixMilli(),
		Hostname:       id,
		Datacenter:     sh.Datacenter,
		ServerUUID:     uuid("server:"),
		ZoneUUID:       uuid("zone:"),
		MantaComputeID: id + ".cn",
		MantaStorageID: id,
	}
	_, err := s.Put("manta_storage", id, value)
	return err
}

// Object is a stored object, as getObject returns it.
type Object struct {
	Bucket string
	Key    string
	Value  json.RawMessage // as reads return it
	ID     int64           // _id
	Etag   string          // _etag
	Mtime  int64           // _mtime: ms since the epoch
}

func (b *bucket) export(o *object) Object {
	return Object{Bucket: b.name, Key: o.key, Value: json.RawMessage(o.view), ID: o.id, Etag: o.etag, Mtime: o.mtime}
}

// jsonValue turns a direct API value into the JSON object Moray would have
// parsed.
func jsonValue(value any) (*jsValue, error) {
	var raw []byte
	switch v := value.(type) {
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	case string:
		raw = []byte(v)
	default:
		var err error
		if raw, err = fast.MarshalData(value); err != nil {
			return nil, err
		}
	}
	v, err := parseJS(raw)
	if err != nil {
		return nil, err
	}
	if !v.isObject() {
		return nil, errNotObject
	}
	return v, nil
}

// Put stores value (a JSON object: json.RawMessage, []byte, string, or
// anything encoding/json marshals) under key, unconditionally, and returns
// the new etag. It is what another writer racing the client looks like.
func (s *Server) Put(bucket, key string, value any) (string, error) {
	v, err := jsonValue(value)
	if err != nil {
		return "", fmt.Errorf("moraytest: put %s::%s: %w", bucket, key, err)
	}
	etag, ferr := s.put(bucket, key, v, etagCond{})
	if ferr != nil {
		return "", ferr
	}
	return etag, nil
}

// Get returns a stored object.
func (s *Server) Get(bucket, key string) (Object, error) {
	b, o, err := s.lookup(bucket, key)
	if err != nil {
		return Object{}, err
	}
	return b.export(o), nil
}

// Delete deletes an object.
func (s *Server) Delete(bucket, key string) error {
	if err := s.del(bucket, key, ""); err != nil {
		return err
	}
	return nil
}

// Objects returns the bucket's objects in _id order, as they were when it
// was called. A missing bucket has none.
func (s *Server) Objects(bucket string) iter.Seq[Object] {
	s.store.mu.RLock()
	b := s.store.buckets[bucket]
	var objs []*object
	if b != nil {
		objs = make([]*object, 0, len(b.objects))
		for _, o := range b.objs {
			if o != nil {
				objs = append(objs, o)
			}
		}
	}
	s.store.mu.RUnlock()
	return func(yield func(Object) bool) {
		for _, o := range objs {
			if !yield(b.export(o)) {
				return
			}
		}
	}
}

// Len returns the number of objects in a bucket.
func (s *Server) Len(bucket string) int {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	if b := s.store.buckets[bucket]; b != nil {
		return len(b.objects)
	}
	return 0
}
