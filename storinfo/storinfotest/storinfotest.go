// Package storinfotest is an in-process storinfo for tests and the demo: an
// http.Handler with the paging semantics of the real manta-storinfo, serving
// minnow-style records that the test changes at run time, with hooks to
// make it fail, slow down or go away.
//
// What it mimics of storinfo (GET /storagenodes):
//
//   - query parameters limit (default 100, 1..500) and after_id only; any
//     other parameter, or a bad limit, is a 400;
//   - records sorted by the numeric prefix of manta_storage_id, so
//     "10.stor" follows "9.stor";
//   - after_id naming a record starts after it; an unknown one starts at
//     the first id greater than it by a binary search that compares
//     strings, as the real one does (and so misbehaves on the same mixed
//     digit counts), and is a 404 when no id is greater. An empty after_id
//     means none;
//   - a Link: </storagenodes?after_id=<last>&limit=<n>>; rel="next" header
//     when more records remain;
//   - GET /storagenodes/{id} (404 when unknown) and POST /flush;
//   - errors as restify bodies: {"code":"...","message":"..."}.
//
// The real service answers 500 when its cache is empty; this one answers
// an empty array, which is what a client must cope with anyway.
package storinfotest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is a minnow heartbeat record, as storinfo serves it.
type Record struct {
	AvailableMB    int64   `json:"availableMB"`
	PercentUsed    float64 `json:"percentUsed"`
	Filesystem     string  `json:"filesystem"`
	Statvfs        Statvfs `json:"statvfs"`
	Timestamp      int64   `json:"timestamp"` // ms; 0 means "measured now" (see Handler)
	Hostname       string  `json:"hostname"`
	Datacenter     string  `json:"datacenter"`
	ServerUUID     string  `json:"server_uuid"`
	ZoneUUID       string  `json:"zone_uuid"`
	MantaComputeID string  `json:"manta_compute_id"`
	MantaStorageID string  `json:"manta_storage_id"`
}

// Statvfs is the raw statvfs(2) result minnow includes.
type Statvfs struct {
	Bsize    int64  `json:"bsize"`
	Frsize   int64  `json:"frsize"`
	Blocks   int64  `json:"blocks"`
	Bfree    int64  `json:"bfree"`
	Bavail   int64  `json:"bavail"`
	Files    int64  `json:"files"`
	Ffree    int64  `json:"ffree"`
	Favail   int64  `json:"favail"`
	Fsid     int64  `json:"fsid"`
	Basetype string `json:"basetype"`
	Flag     int64  `json:"flag"`
	Namemax  int64  `json:"namemax"`
}

// TotalMB is the filesystem size the record describes, in MiB (0 when its
// statvfs is not filled in).
func (r Record) TotalMB() int64 { return r.Statvfs.Blocks * r.Statvfs.Frsize >> 20 }

const blockSize = 4096

// NewRecord returns the record of a shark in datacenter dc with a /manta
// filesystem of totalMB MiB of which availableMB are free. The other
// fields are derived from the storage id ("3.stor.example.com" gives
// compute id "3.cn.example.com" and made-up uuids).
func NewRecord(storageID, dc string, totalMB, availableMB int64) Record {
	head, domain, _ := strings.Cut(storageID, ".stor.")
	r := Record{
		Filesystem:     "/manta",
		Hostname:       storageID,
		Datacenter:     dc,
		ServerUUID:     fakeUUID("server", storageID),
		ZoneUUID:       fakeUUID("zone", storageID),
		MantaComputeID: head + ".cn." + domain,
		MantaStorageID: storageID,
		Statvfs: Statvfs{
			Bsize: blockSize, Frsize: blockSize, Blocks: totalMB << 20 / blockSize,
			Files: 1 << 24, Ffree: 1 << 23, Favail: 1 << 23, Fsid: 1, Basetype: "zfs", Namemax: 255,
		},
	}
	r.setAvailable(availableMB)
	return r
}

// setAvailable updates the free space and what derives from it, as minnow
// computes it: percentUsed is ceil(used/total*100).
func (r *Record) setAvailable(mb int64) {
	r.AvailableMB = max(mb, 0)
	if total := r.TotalMB(); total > 0 {
		r.AvailableMB = min(r.AvailableMB, total)
		r.Statvfs.Bavail = r.AvailableMB << 20 / blockSize
		r.Statvfs.Bfree = r.Statvfs.Bavail
		r.PercentUsed = math.Ceil(float64(total-r.AvailableMB) / float64(total) * 100)
	}
}

func fakeUUID(kind, id string) string {
	var h uint64 = 14695981039346656037
	for _, c := range []byte(kind + "/" + id) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(h>>32), uint16(h>>16), uint16(h)&0xfff, uint16(h>>4)&0xfff, h&0xffffffffffff)
}

// Handler is the in-process storinfo. Its methods are safe to call while it
// serves. The zero value is not usable; call NewHandler.
//
// A record whose Timestamp is 0 is served with the current time, as though
// minnow had just measured it: a live shark. Set a Timestamp to freeze it.
type Handler struct {
	mu        sync.Mutex
	records   map[string]Record
	now       func() time.Time
	failN     int
	failCode  int
	delay     time.Duration
	down      bool
	intercept func(w http.ResponseWriter, r *http.Request) bool
	requests  []string
	flushes   int
}

// NewHandler returns a storinfo serving records.
func NewHandler(records ...Record) *Handler {
	h := &Handler{records: map[string]Record{}, now: time.Now}
	h.Put(records...)
	return h
}

// SetClock replaces time.Now as the source of live timestamps.
func (h *Handler) SetClock(now func() time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = now
}

// Put adds records, replacing any with the same storage id.
func (h *Handler) Put(records ...Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range records {
		h.records[r.MantaStorageID] = r
	}
}

// Update changes the record of id in place; it reports whether id exists.
func (h *Handler) Update(id string, change func(*Record)) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.records[id]
	if ok {
		change(&r)
		h.records[id] = r
	}
	return ok
}

// SetAvailableMB sets the free space of id, recomputing percentUsed and
// statvfs when the record has a size; it reports whether id exists.
func (h *Handler) SetAvailableMB(id string, mb int64) bool {
	return h.Update(id, func(r *Record) { r.setAvailable(mb) })
}

// AdjustAvailableMB adds delta MiB (negative to consume space) to id's free
// space, as SetAvailableMB does; it reports whether id exists.
func (h *Handler) AdjustAvailableMB(id string, delta int64) bool {
	return h.Update(id, func(r *Record) { r.setAvailable(r.AvailableMB + delta) })
}

// Remove drops the record of id; it reports whether it existed.
func (h *Handler) Remove(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.records[id]
	delete(h.records, id)
	return ok
}

// Record returns the record of id as it is stored (Timestamp 0 for a live
// record).
func (h *Handler) Record(id string) (Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.records[id]
	return r, ok
}

// Records returns every record in storinfo's order.
func (h *Handler) Records() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sortedLocked()
}

// FailNext makes the next n requests answer status with an error body.
func (h *Handler) FailNext(n, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failN, h.failCode = n, status
}

// SetDelay makes every request wait d before it is answered (or until the
// client gives up).
func (h *Handler) SetDelay(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delay = d
}

// SetDown takes the service away: while down, every connection is closed
// without an answer, so clients see a transport error.
func (h *Handler) SetDown(down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = down
}

// Intercept installs f, which sees every request before the handler does
// and answers it itself by returning true (for bespoke faults, such as a
// malformed body). nil removes it.
func (h *Handler) Intercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.intercept = f
}

// Requests returns the method, path and query of every request received,
// such as "GET /storagenodes?limit=100&after_id=".
func (h *Handler) Requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.requests)
}

// Flushes counts the POST /flush requests answered.
func (h *Handler) Flushes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.flushes
}

// ServeHTTP answers the storinfo API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, r.Method+" "+r.URL.RequestURI())
	down, delay, intercept := h.down, h.delay, h.intercept
	fail := 0
	if h.failN > 0 {
		h.failN--
		fail = h.failCode
	}
	h.mu.Unlock()

	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if intercept != nil && intercept(w, r) {
		return
	}
	if fail != 0 {
		writeError(w, fail, "InternalError", "injected failure")
		return
	}

	switch {
	case r.URL.Path == "/storagenodes":
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" is not allowed")
			return
		}
		h.list(w, r)
	case strings.HasPrefix(r.URL.Path, "/storagenodes/"):
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" is not allowed")
			return
		}
		h.get(w, strings.TrimPrefix(r.URL.Path, "/storagenodes/"))
	case r.URL.Path == "/flush":
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" is not allowed")
			return
		}
		h.mu.Lock()
		h.flushes++
		h.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	default:
		writeError(w, http.StatusNotFound, "ResourceNotFound", r.URL.Path+" does not exist")
	}
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "limit" && k != "after_id" {
			writeError(w, http.StatusBadRequest, "InvalidArgument", "unknown query parameter "+k)
			return
		}
	}
	limit := 100
	if v := q.Get("limit"); q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeError(w, http.StatusBadRequest, "InvalidArgument", "limit must be a number in 1..500")
			return
		}
		limit = n
	}
	h.mu.Lock()
	all := h.sortedLocked()
	h.mu.Unlock()

	start := 0
	if after := q.Get("after_id"); after != "" {
		if i := slices.IndexFunc(all, func(r Record) bool { return r.MantaStorageID == after }); i >= 0 {
			start = i + 1
		} else {
			// The real service searches its numerically sorted list as
			// though it were sorted as strings.
			start, _ = slices.BinarySearchFunc(all, after, func(r Record, id string) int {
				return strings.Compare(r.MantaStorageID, id)
			})
			if start == len(all) {
				writeError(w, http.StatusNotFound, "ResourceNotFound", "no storage node after "+after)
				return
			}
		}
	}
	end := min(start+limit, len(all))
	page := all[start:end]
	if end < len(all) {
		next := "/storagenodes?after_id=" + url.QueryEscape(page[len(page)-1].MantaStorageID) + "&limit=" + strconv.Itoa(limit)
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	h.stamp(page)
	writeJSON(w, http.StatusOK, page)
}

func (h *Handler) get(w http.ResponseWriter, id string) {
	h.mu.Lock()
	rec, ok := h.records[id]
	h.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "ResourceNotFound", "storage node "+id+" not found")
		return
	}
	page := []Record{rec}
	h.stamp(page)
	writeJSON(w, http.StatusOK, page[0])
}

// stamp gives live records the current time.
func (h *Handler) stamp(page []Record) {
	h.mu.Lock()
	now := h.now().UnixMilli()
	h.mu.Unlock()
	for i := range page {
		if page[i].Timestamp == 0 {
			page[i].Timestamp = now
		}
	}
}

// sortedLocked returns the records by the numeric prefix of their storage
// id, then by id; h.mu is held.
func (h *Handler) sortedLocked() []Record {
	out := make([]Record, 0, len(h.records))
	for _, r := range h.records {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int {
		return cmp.Or(cmp.Compare(numericPrefix(a.MantaStorageID), numericPrefix(b.MantaStorageID)),
			strings.Compare(a.MantaStorageID, b.MantaStorageID))
	})
	return out
}

func numericPrefix(id string) int64 {
	i := 0
	for i < len(id) && id[i] >= '0' && id[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(id[:i], 10, 64)
	if err != nil {
		return math.MaxInt64
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg})
}

// Server is a Handler listening on a loopback port.
type Server struct {
	*Handler
	URL string // base URL, such as http://127.0.0.1:41234
	srv *httptest.Server
}

// NewServer starts a storinfo on 127.0.0.1 serving records. Close stops it.
func NewServer(records ...Record) *Server {
	h := NewHandler(records...)
	srv := httptest.NewServer(h)
	return &Server{Handler: h, URL: srv.URL, srv: srv}
}

// Close stops the server and waits for the requests in progress.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}
