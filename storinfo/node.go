package storinfo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

// MiB is the unit of AvailableMB: minnow reports floor(bavail*frsize/1MiB).
const MiB = 1 << 20

// Node is one storage node ("shark") as storinfo reports it: a minnow
// heartbeat record. Only the fields the rebalancer uses are kept.
type Node struct {
	MantaStorageID string `json:"manta_storage_id"` // "1.stor.us-east.joyent.us"
	Datacenter     string `json:"datacenter"`
	// AvailableMB is the space left on the shark's /manta filesystem, in
	// MiB, as minnow measured it at Timestamp.
	AvailableMB int64 `json:"availableMB"`
	// PercentUsed is ceil(used/total*100) as minnow computes it. It is a
	// float so that a storinfo reporting decimals is still understood.
	PercentUsed float64 `json:"percentUsed"`
	Filesystem  string  `json:"filesystem"`
	// Timestamp is when minnow measured the shark, in milliseconds since
	// the Unix epoch on the shark's clock (0 when storinfo did not say).
	Timestamp int64 `json:"timestamp"`
}

// StorageNode returns the name of n as it appears in object metadata.
func (n Node) StorageNode() rebalancer.StorageNode {
	return rebalancer.StorageNode{Datacenter: n.Datacenter, MantaStorageID: n.MantaStorageID}
}

// Time returns Timestamp as a time, or the zero time when it is unset.
func (n Node) Time() time.Time {
	if n.Timestamp == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n.Timestamp)
}

func (n Node) String() string { return n.MantaStorageID }

// UnmarshalJSON decodes a minnow record as storinfo serves it. The real
// service spells the capacity fields availableMB and percentUsed; the legacy
// rebalancer's own encoding uses available_mb and percent_used, and both are
// accepted (camelCase wins when a record carries both). Unknown fields, such
// as statvfs, hostname and the zone and server uuids, are ignored.
//
// manta_storage_id, datacenter and the two capacity fields are required: a
// record without them cannot be placed on, and guessing a default would
// make a shark look empty or full. filesystem and timestamp are optional,
// although minnow always sends them (the legacy client required them; a
// missing one costs nothing here).
func (n *Node) UnmarshalJSON(b []byte) error {
	var raw struct {
		MantaStorageID *string      `json:"manta_storage_id"`
		Datacenter     *string      `json:"datacenter"`
		AvailableMB    *json.Number `json:"availableMB"`
		AvailableMB2   *json.Number `json:"available_mb"`
		PercentUsed    *json.Number `json:"percentUsed"`
		PercentUsed2   *json.Number `json:"percent_used"`
		Filesystem     *string      `json:"filesystem"`
		Timestamp      *json.Number `json:"timestamp"`
	}
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return errors.New("storage node record is null")
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("storage node record: %w", err)
	}
	var out Node
	if raw.MantaStorageID == nil || *raw.MantaStorageID == "" {
		return errors.New("storage node record: missing manta_storage_id")
	}
	out.MantaStorageID = *raw.MantaStorageID
	bad := func(format string, args ...any) error {
		return fmt.Errorf("storage node %s: "+format, append([]any{out.MantaStorageID}, args...)...)
	}
	if raw.Datacenter == nil || *raw.Datacenter == "" {
		return bad("missing datacenter")
	}
	out.Datacenter = *raw.Datacenter
	if raw.Filesystem != nil {
		out.Filesystem = *raw.Filesystem
	}

	avail := firstNumber(raw.AvailableMB, raw.AvailableMB2)
	if avail == nil {
		return bad("missing availableMB")
	}
	var err error
	if out.AvailableMB, err = wholeNumber(*avail); err != nil {
		return bad("availableMB: %v", err)
	}

	pct := firstNumber(raw.PercentUsed, raw.PercentUsed2)
	if pct == nil {
		return bad("missing percentUsed")
	}
	p, err := pct.Float64()
	if err != nil || math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
		return bad("percentUsed %s is not a non-negative number", pct.String())
	}
	out.PercentUsed = p

	if raw.Timestamp != nil {
		if out.Timestamp, err = wholeNumber(*raw.Timestamp); err != nil {
			return bad("timestamp: %v", err)
		}
	}
	*n = out
	return nil
}

func firstNumber(ns ...*json.Number) *json.Number {
	for _, n := range ns {
		if n != nil {
			return n
		}
	}
	return nil
}

// wholeNumber reads a non-negative JSON number, truncating a fraction (a
// JavaScript service may well print 1234.0).
func wholeNumber(n json.Number) (int64, error) {
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if v < 0 {
			return 0, fmt.Errorf("%d is negative", v)
		}
		return v, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f >= math.MaxInt64 {
		return 0, fmt.Errorf("%s is not a non-negative number", n.String())
	}
	return int64(f), nil
}
