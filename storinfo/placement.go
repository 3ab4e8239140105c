package storinfo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

var (
	_ rebalancer.Placement = (*Placement)(nil)
	_ SnapshotSource       = (*View)(nil)
	_ Lister               = (*Client)(nil)
)

// Defaults of Tunables and PlacementConfig.
const (
	DefaultMaxFillPercentage = 100 // legacy max_fill_percentage
	DefaultMinAvailMB        = 1000
	DefaultMaxSharks         = 5
	DefaultMaxStaleness      = 5 * time.Minute
	DefaultClockSkew         = 2 * time.Second
)

// Errors Place returns when it cannot judge capacity at all. They are not
// skips: the object should be placed again later.
var (
	ErrNoSnapshot     = errors.New("no storinfo snapshot yet")
	ErrStaleSnapshot  = errors.New("storinfo snapshot too old")
	ErrNoStorageNodes = errors.New("no storage node eligible as a destination")
)

// SnapshotSource supplies the latest fleet snapshot; *View implements it.
// Snapshot must be cheap and must not call back into the Placement: it is
// called with the Placement's lock held.
type SnapshotSource interface {
	Snapshot() *Snapshot
}

// Tunables are the placement limits an operator may change while jobs run
// (Placement.SetTunables). Zero values mean the defaults.
type Tunables struct {
	// MaxFillPercentage caps how full a destination may get, in percent of
	// its size (legacy max_fill_percentage): 1..100, 0 means 100.
	MaxFillPercentage int
	// MinAvailMB is the space, in MiB, every destination keeps free after
	// the objects placed on it land. 0 means 1000 (the legacy's hard-coded
	// min_avail_mb); negative means no minimum.
	MinAvailMB int64
	// MaxSharks is how many of the roomiest valid destinations an object
	// chooses among at random (legacy max_sharks). 0 means 5.
	MaxSharks int
	// BlocklistSharks and BlocklistDatacenters are never destinations.
	BlocklistSharks      []string
	BlocklistDatacenters []string
	// MaxStaleness is how old a snapshot may be and still be placed on; an
	// older one makes Place return ErrStaleSnapshot. 0 means 5 minutes,
	// negative means no limit.
	MaxStaleness time.Duration
}

// limits is Tunables with defaults applied.
type limits struct {
	maxFill      int
	minAvail     int64 // bytes
	maxSharks    int
	maxStaleness time.Duration // 0: none
	blockShark   map[string]bool
	blockDC      map[string]bool
}

// Validate reports the limits that NewPlacement and SetTunables refuse.
func (t Tunables) Validate() error {
	_, err := t.limits()
	return err
}

func (t Tunables) limits() (limits, error) {
	l := limits{maxFill: t.MaxFillPercentage, maxSharks: t.MaxSharks, maxStaleness: t.MaxStaleness}
	switch {
	case l.maxFill == 0:
		l.maxFill = DefaultMaxFillPercentage
	case l.maxFill < 1 || l.maxFill > 100:
		return limits{}, fmt.Errorf("storinfo: max fill percentage %d is outside 1..100", t.MaxFillPercentage)
	}
	switch {
	case t.MinAvailMB == 0:
		l.minAvail = DefaultMinAvailMB * MiB
	case t.MinAvailMB > 0:
		if t.MinAvailMB > (1<<62)/MiB {
			return limits{}, fmt.Errorf("storinfo: min available %d MiB is too large", t.MinAvailMB)
		}
		l.minAvail = t.MinAvailMB * MiB
	}
	switch {
	case l.maxSharks == 0:
		l.maxSharks = DefaultMaxSharks
	case l.maxSharks < 0:
		return limits{}, fmt.Errorf("storinfo: max sharks %d is negative", t.MaxSharks)
	}
	switch {
	case l.maxStaleness == 0:
		l.maxStaleness = DefaultMaxStaleness
	case l.maxStaleness < 0:
		l.maxStaleness = 0
	}
	l.blockShark = make(map[string]bool, len(t.BlocklistSharks))
	for _, s := range t.BlocklistSharks {
		l.blockShark[s] = true
	}
	l.blockDC = make(map[string]bool, len(t.BlocklistDatacenters))
	for _, dc := range t.BlocklistDatacenters {
		l.blockDC[dc] = true
	}
	return l, nil
}

// PlacementConfig configures a Placement.
type PlacementConfig struct {
	Tunables
	// Snapshots supplies the fleet; usually a *View. Required.
	Snapshots SnapshotSource
	// Rand drives the choice among the top MaxSharks destinations. Set a
	// seeded source (rand.NewPCG(1, 2)) for reproducible choices; the
	// default is randomly seeded.
	Rand rand.Source
	// ClockSkew is how far a shark's clock may run ahead of this process's.
	// Bytes released as copied keep counting against their destination
	// until storinfo shows a measurement taken ClockSkew after the release
	// (default 2 s; negative means 0).
	ClockSkew time.Duration
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
	// Logger receives accounting anomalies (default: discarded).
	Logger *slog.Logger
}

// Placement is the default rebalancer.Placement: it picks destinations
// from the latest storinfo snapshot by the legacy rules, and keeps account
// of the bytes it has placed so that one Placement shared by every running
// job never overfills a destination between two storinfo refreshes.
//
// # Rules
//
// A storage node is a valid destination for an object leaving shark from
// when it is in the snapshot and:
//
//   - it is not from, and no element of the object's sharks array names it
//     (object_already_on_dest_shark);
//   - it is in from's datacenter, or in a datacenter holding no copy of the
//     object (object_already_in_datacenter). A move within a datacenter is
//     always allowed, so a one-datacenter region places everything;
//   - it is not in the avoid list the caller passes (destinations that
//     already failed this object);
//   - neither it nor its datacenter is blocklisted, and it is not excluded
//     (ExcludeSharks: the sharks being evacuated or evacuated already).
//
// # Capacity
//
// A destination's limit is the room AvailableMB (the legacy formula) gives
// under MaxFillPercentage, further capped so that MinAvailMB stays free; a
// shark whose percentUsed is at or past MaxFillPercentage, or that reports
// less than MinAvailMB, takes nothing. From the limit the Placement
// subtracts its pending bytes for that destination:
//
//   - reserved: the exact sizes of the objects Place put there and nobody
//     has released yet (copies queued or in flight);
//   - unreflected: bytes released as copied (Release with copied=true) that
//     storinfo cannot show yet. They stop counting once a snapshot taken
//     after the release carries a minnow measurement (the node's
//     Timestamp, or the snapshot's time when it has none) later than the
//     release plus ClockSkew: from then on AvailableMB itself includes them.
//
// Bytes released uncopied are forgotten at once. An object fits when the
// limit minus the pending bytes is at least its size, so a zero-byte object
// fits on any destination that takes anything. Copies in progress may be
// counted twice (reserved, and already written into AvailableMB); the error
// is on the safe side and ends with the copy.
//
// # Choice
//
// Among the valid destinations with room, Place takes the MaxSharks with
// the most room left and picks one at random, for every object: a batch is
// spread over several destinations, and the roomiest ones fill first.
//
// A Placement is safe for concurrent use. Place and Release cost a few
// hundred nanoseconds with hundreds of sharks: destinations are kept sorted
// by room, so Place looks at the first few only.
type Placement struct {
	src  SnapshotSource
	now  func() time.Time
	skew time.Duration
	log  *slog.Logger

	mu       sync.Mutex
	tunables Tunables
	lim      limits
	excluded map[string]bool // ExcludeSharks's; apart from the tunables, which a reload replaces
	rng      *rand.Rand
	snap     *Snapshot // the snapshot order was built from
	dirty    bool      // tunables changed since order was built
	order    []*slot   // placeable destinations, most room first
	nodes    map[string]*slot
	accounts map[string]*account
	picks    []*slot // scratch for Place
}

// account is what the Placement owes one destination.
type account struct {
	reserved  int64
	copied    []release // oldest first
	copiedSum int64
	slot      int // index in Placement.order, or -1
}

type release struct {
	at    time.Time
	bytes int64
}

func (a *account) pending() int64 { return a.reserved + a.copiedSum }

// slot is a storage node of the current snapshot.
type slot struct {
	node        Node
	sn          rebalancer.StorageNode
	limit       int64 // bytes it may take before our reservations; < 0: none
	acct        *account
	rank        int // position in the snapshot, to break ties
	blocklisted bool
	excluded    bool // ExcludeSharks names it
}

func (s *slot) room() int64 { return s.limit - s.acct.pending() }

// before orders slots by room, most first, then by snapshot position.
func (s *slot) before(o *slot) bool {
	r, q := s.room(), o.room()
	return r > q || r == q && s.rank < o.rank
}

// NewPlacement checks cfg and returns a Placement.
func NewPlacement(cfg PlacementConfig) (*Placement, error) {
	if cfg.Snapshots == nil {
		return nil, errors.New("storinfo: PlacementConfig.Snapshots is required")
	}
	lim, err := cfg.Tunables.limits()
	if err != nil {
		return nil, err
	}
	p := &Placement{
		src:      cfg.Snapshots,
		now:      cfg.Now,
		skew:     cfg.ClockSkew,
		log:      cfg.Logger,
		tunables: cloneTunables(cfg.Tunables),
		lim:      lim,
		nodes:    map[string]*slot{},
		accounts: map[string]*account{},
	}
	switch {
	case p.skew == 0:
		p.skew = DefaultClockSkew
	case p.skew < 0:
		p.skew = 0
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	src := cfg.Rand
	if src == nil {
		src = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	p.rng = rand.New(src)
	return p, nil
}

func cloneTunables(t Tunables) Tunables {
	t.BlocklistSharks = slices.Clone(t.BlocklistSharks)
	t.BlocklistDatacenters = slices.Clone(t.BlocklistDatacenters)
	return t
}

// SetTunables changes the limits for every later Place; reservations
// already made stay. An invalid value changes nothing.
func (p *Placement) SetTunables(t Tunables) error {
	lim, err := t.limits()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tunables, p.lim, p.dirty = cloneTunables(t), lim, true
	return nil
}

// ExcludeSharks replaces the set of sharks never chosen as destinations
// besides the blocklists: package evacuate gives it the sharks that are
// draining or drained, and those that running jobs evacuate, whenever they
// change. SetTunables leaves it alone, so that a configuration reload
// never brings an evacuated shark back. It makes Placement an
// evacuate.SharkExcluder.
func (p *Placement) ExcludeSharks(sharks []string) {
	set := make(map[string]bool, len(sharks))
	for _, s := range sharks {
		set[s] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.excluded, p.dirty = set, true
}

// Tunables returns the limits in force, as they were set.
func (p *Placement) Tunables() Tunables {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneTunables(p.tunables)
}

// Place picks a destination for obj, which is leaving the shark from, and
// reserves obj.ContentLength bytes there. See the type's documentation for
// the rules. When no destination is valid and has room it returns a
// *rebalancer.SkipError whose reason is, most telling first:
// destination_insufficient_space when some valid destination lacks room,
// destination_unreachable when the only valid ones are in avoid,
// object_already_in_datacenter when the datacenter rule rejected one, and
// object_already_on_dest_shark otherwise. Without a usable snapshot it
// returns an error wrapping ErrNoSnapshot, ErrStaleSnapshot or
// ErrNoStorageNodes instead: the object should be placed again later.
func (p *Placement) Place(ctx context.Context, obj rebalancer.Object, from rebalancer.StorageNode, avoid []string) (rebalancer.StorageNode, error) {
	if err := ctx.Err(); err != nil {
		return rebalancer.StorageNode{}, err
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.syncUsable(obj.ID, now); err != nil {
		return rebalancer.StorageNode{}, err
	}
	if len(p.order) == 0 {
		return rebalancer.StorageNode{}, fmt.Errorf("storinfo: placing object %s: %w (%d listed, all blocklisted or out of service)", obj.ID, ErrNoStorageNodes, len(p.nodes))
	}
	fromDC, err := p.datacenterOf(&obj, from)
	if err != nil {
		return rebalancer.StorageNode{}, err
	}
	size := max(obj.ContentLength, 0)

	picks := p.picks[:0]
	for _, s := range p.order {
		if s.room() < size {
			break // sorted: nobody further down has room either
		}
		if reject(s, &obj, from.MantaStorageID, fromDC, avoid) != valid {
			continue
		}
		picks = append(picks, s)
		if len(picks) == p.lim.maxSharks {
			break
		}
	}
	p.picks = picks
	if len(picks) == 0 {
		return rebalancer.StorageNode{}, p.noDestination(&obj, from.MantaStorageID, fromDC, avoid, size)
	}
	s := picks[0]
	if len(picks) > 1 {
		s = picks[p.rng.IntN(len(picks))]
	}
	s.acct.reserved += size
	p.fix(s.acct.slot)
	return s.sn, nil
}

// syncUsable brings the destinations up to the source's snapshot before
// placing object id, or says why that snapshot cannot be placed on at now.
// p.mu is held: the snapshot is read under the lock, so that a caller
// holding an older snapshot cannot make the shared state go back to it.
func (p *Placement) syncUsable(id string, now time.Time) error {
	snap := p.src.Snapshot()
	if err := p.usable(snap, now); err != nil {
		return fmt.Errorf("storinfo: placing object %s: %w", id, err)
	}
	p.sync(snap)
	return nil
}

// usable reports why snap cannot be placed on, if it cannot.
func (p *Placement) usable(snap *Snapshot, now time.Time) error {
	switch {
	case snap == nil:
		return ErrNoSnapshot
	case p.lim.maxStaleness > 0 && now.Sub(snap.Taken) > p.lim.maxStaleness:
		return fmt.Errorf("%w: taken %s ago, limit %s", ErrStaleSnapshot, now.Sub(snap.Taken).Round(time.Second), p.lim.maxStaleness)
	}
	return nil
}

// Release gives back bytes reserved on dest by Place. With copied, the
// bytes keep counting until storinfo reflects them (see the type's
// documentation); without, they are free at once. Callers may release the
// reservations of many objects in one call.
func (p *Placement) Release(dest rebalancer.StorageNode, bytes int64, copied bool) {
	if bytes <= 0 {
		return
	}
	var now time.Time
	if copied {
		now = p.now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.accounts[dest.MantaStorageID]
	if a == nil {
		if !copied {
			p.log.Warn("storinfo placement: release of bytes never reserved", "shark", dest.MantaStorageID, "bytes", bytes)
			return
		}
		// Copied bytes this Placement did not place (say, by a job resumed
		// after a restart) are still not in storinfo yet.
		a = &account{slot: -1}
		p.accounts[dest.MantaStorageID] = a
	}
	if bytes > a.reserved && !copied {
		p.log.Warn("storinfo placement: release of more bytes than reserved", "shark", dest.MantaStorageID, "bytes", bytes, "reserved", a.reserved)
	}
	a.reserved -= min(bytes, a.reserved)
	if copied {
		// One entry per second and destination keeps the list short when
		// storinfo is down for long; dating the merged entry at the last
		// release only delays forgetting it.
		if n := len(a.copied); n > 0 && now.Sub(a.copied[n-1].at) < time.Second {
			a.copied[n-1].at = now
			a.copied[n-1].bytes += bytes
		} else {
			a.copied = append(a.copied, release{at: now, bytes: bytes})
		}
		a.copiedSum += bytes
	}
	if a.slot >= 0 {
		p.fix(a.slot)
	}
}

// sync rebuilds the sorted destinations when the snapshot or the tunables
// changed. p.mu is held.
func (p *Placement) sync(snap *Snapshot) {
	if snap == p.snap && !p.dirty {
		return
	}
	if snap != p.snap {
		p.forgetReflected(snap)
	}
	p.snap, p.dirty = snap, false
	for _, a := range p.accounts {
		a.slot = -1
	}
	clear(p.nodes)
	p.order = p.order[:0]
	for i, n := range snap.Nodes {
		a := p.accounts[n.MantaStorageID]
		if a == nil {
			a = &account{slot: -1}
			p.accounts[n.MantaStorageID] = a
		}
		s := &slot{node: n, sn: n.StorageNode(), acct: a, rank: i, limit: p.limit(n)}
		s.blocklisted = p.lim.blockShark[n.MantaStorageID] || p.lim.blockDC[n.Datacenter]
		s.excluded = p.excluded[n.MantaStorageID]
		p.nodes[n.MantaStorageID] = s
		if !s.blocklisted && !s.excluded {
			p.order = append(p.order, s)
		}
	}
	slices.SortFunc(p.order, func(a, b *slot) int {
		if a.before(b) {
			return -1
		}
		return 1
	})
	for i, s := range p.order {
		s.acct.slot = i
	}
	// Forget idle destinations that left the fleet.
	for id, a := range p.accounts {
		if a.pending() == 0 && p.nodes[id] == nil {
			delete(p.accounts, id)
		}
	}
}

// forgetReflected drops the copied bytes that snap's measurements include.
func (p *Placement) forgetReflected(snap *Snapshot) {
	for _, n := range snap.Nodes {
		a := p.accounts[n.MantaStorageID]
		if a == nil || len(a.copied) == 0 {
			continue
		}
		measured := n.Time()
		if measured.IsZero() {
			measured = snap.Taken
		}
		keep := a.copied[:0]
		for _, r := range a.copied {
			if snap.Taken.After(r.at) && measured.After(r.at.Add(p.skew)) {
				a.copiedSum -= r.bytes
				continue
			}
			keep = append(keep, r)
		}
		clear(a.copied[len(keep):])
		a.copied = keep
	}
}

// limit is how many bytes n may take under the current limits, before any
// reservation; negative when it takes nothing at all.
func (p *Placement) limit(n Node) int64 {
	avail := min(n.AvailableMB, maxAvailMB)
	if n.PercentUsed >= float64(p.lim.maxFill) || avail*MiB < p.lim.minAvail {
		return -1
	}
	return min(AvailableMB(avail, n.PercentUsed, p.lim.maxFill, 0)*MiB, avail*MiB-p.lim.minAvail)
}

// maxAvailMB (an exbibyte) keeps byte counts far from overflowing whatever
// a storinfo reports.
const maxAvailMB = 1 << 40

// fix moves order[i] to its place after its room changed.
func (p *Placement) fix(i int) {
	o := p.order
	for i > 0 && o[i].before(o[i-1]) {
		o[i], o[i-1] = o[i-1], o[i]
		o[i].acct.slot, o[i-1].acct.slot = i, i-1
		i--
	}
	for i+1 < len(o) && o[i+1].before(o[i]) {
		o[i], o[i+1] = o[i+1], o[i]
		o[i].acct.slot, o[i+1].acct.slot = i, i+1
		i++
	}
}

// datacenterOf finds the evacuated shark's datacenter, which the
// datacenter rule needs: the caller's, else the object's own record of it,
// else storinfo's. Guessing would break the rule, so not knowing is an
// error.
func (p *Placement) datacenterOf(obj *rebalancer.Object, from rebalancer.StorageNode) (string, error) {
	if from.Datacenter != "" {
		return from.Datacenter, nil
	}
	for _, s := range obj.Sharks {
		if s.MantaStorageID == from.MantaStorageID && s.Datacenter != "" {
			return s.Datacenter, nil
		}
	}
	if s := p.nodes[from.MantaStorageID]; s != nil {
		return s.node.Datacenter, nil
	}
	return "", fmt.Errorf("storinfo: placing object %s: datacenter of evacuated shark %q unknown", obj.ID, from.MantaStorageID)
}

type verdict uint8

const (
	valid verdict = iota
	holdsCopy
	datacenterHoldsCopy
	avoided
)

// reject applies the per-object rules (legacy validate_destination, plus
// the avoid list) to one destination.
func reject(s *slot, obj *rebalancer.Object, fromID, fromDC string, avoid []string) verdict {
	id, dc := s.sn.MantaStorageID, s.sn.Datacenter
	if id == fromID {
		return holdsCopy
	}
	crossDC := dc != fromDC
	inDC := false
	for i := range obj.Sharks {
		c := &obj.Sharks[i]
		if c.MantaStorageID == id {
			return holdsCopy
		}
		if crossDC && c.Datacenter == dc {
			inDC = true
		}
	}
	if inDC {
		return datacenterHoldsCopy
	}
	for _, a := range avoid {
		if a == id {
			return avoided
		}
	}
	return valid
}

// noDestination explains why no destination took obj.
func (p *Placement) noDestination(obj *rebalancer.Object, fromID, fromDC string, avoid []string, size int64) error {
	var count [avoided + 1]int
	for _, s := range p.order {
		count[reject(s, obj, fromID, fromDC, avoid)]++
	}
	var reason rebalancer.SkipReason
	switch {
	case count[valid] > 0:
		reason = rebalancer.SkipDestinationInsufficientSpace
	case count[avoided] > 0:
		reason = rebalancer.SkipDestinationUnreachable
	case count[datacenterHoldsCopy] > 0:
		reason = rebalancer.SkipObjectAlreadyInDatacenter
	default:
		reason = rebalancer.SkipObjectAlreadyOnDestShark
	}
	return &rebalancer.SkipError{Reason: reason, Err: fmt.Errorf(
		"object %s (%d bytes) leaving %s: none of %d storage nodes fits: %d hold a copy, %d are in another datacenter holding a copy, %d already failed it, %d lack room",
		obj.ID, size, fromID, len(p.order), count[holdsCopy], count[datacenterHoldsCopy], count[avoided], count[valid])}
}

// CapacityReport is the Placement's view of every destination, for dry
// runs and status pages.
type CapacityReport struct {
	Taken        time.Time           `json:"taken"`        // when the snapshot was taken; zero without one
	Destinations []DestinationReport `json:"destinations"` // by storage id
}

// DestinationReport is one destination's capacity and what is pending on it.
type DestinationReport struct {
	MantaStorageID string  `json:"manta_storage_id"`
	Datacenter     string  `json:"datacenter"` // empty when not Listed
	Listed         bool    `json:"listed"`     // in the current snapshot (false: only pending bytes are known)
	Blocklisted    bool    `json:"blocklisted"`
	AvailableMB    int64   `json:"available_mb"` // as storinfo reports it
	PercentUsed    float64 `json:"percent_used"` // as storinfo reports it
	// Excluded says it is out of service (ExcludeSharks).
	Excluded bool `json:"excluded,omitempty"`
	// LimitBytes is what the destination may take under the tunables,
	// before any reservation; negative when it takes nothing.
	LimitBytes       int64 `json:"limit_bytes"`
	ReservedBytes    int64 `json:"reserved_bytes"`    // placed, not yet released
	UnreflectedBytes int64 `json:"unreflected_bytes"` // copied, not yet in storinfo's numbers
	// FreeBytes is LimitBytes minus the pending bytes: what Place may still
	// put there.
	FreeBytes int64 `json:"free_bytes"`
	// ProjectedPercentUsed is how full the destination will be once every
	// pending byte has landed.
	ProjectedPercentUsed float64 `json:"projected_percent_used"`
}

// Capacity reports every destination of the latest snapshot, and any other
// with bytes pending. It works with a stale snapshot too.
func (p *Placement) Capacity() CapacityReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	snap := p.src.Snapshot()
	var r CapacityReport
	if snap != nil {
		p.sync(snap)
		r.Taken = snap.Taken
	}
	for id, a := range p.accounts {
		d := DestinationReport{MantaStorageID: id, ReservedBytes: a.reserved, UnreflectedBytes: a.copiedSum}
		if s := p.nodes[id]; s != nil {
			d.Datacenter, d.Listed, d.Blocklisted, d.Excluded = s.sn.Datacenter, true, s.blocklisted, s.excluded
			d.AvailableMB, d.PercentUsed, d.LimitBytes = s.node.AvailableMB, s.node.PercentUsed, s.limit
			d.FreeBytes = s.room()
			d.ProjectedPercentUsed = projected(s.node, a.pending())
		}
		r.Destinations = append(r.Destinations, d)
	}
	slices.SortFunc(r.Destinations, func(a, b DestinationReport) int { return cmp.Compare(a.MantaStorageID, b.MantaStorageID) })
	return r
}

// projected is n's percent used once pending more bytes are written.
func projected(n Node, pending int64) float64 {
	if n.PercentUsed >= 100 {
		return n.PercentUsed
	}
	total := float64(n.AvailableMB) / (1 - n.PercentUsed/100) // MiB
	if total <= 0 {
		return n.PercentUsed
	}
	used := total - float64(n.AvailableMB) + float64(pending)/MiB
	return used / total * 100
}
