package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"

	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// blockSize is what a file's size is rounded up to on disk (tmpfs pages,
// ext4 and ZFS records of small files are 4 KiB).
const blockSize = 4096

// dbBytesPerObject is the job store's and the agents' databases' share of
// each object moved, and dbBytes their fixed part, measured roughly on
// runs of the demo (SQLite files and their write-ahead logs).
const (
	dbBytesPerObject = 2048
	dbBytes          = 64 << 20
)

// estimate is what the demo will write into its scratch directory.
type estimate struct {
	objects, copies int64
	mean            int64 // mean object size
	agentCopies     int64 // the copies the agents make of the objects moved
	bytes           int64 // all of it on disk
}

func (c *cli) estimate() estimate {
	// v2 objects and upload parts are sized and copied like v1 objects.
	all := c.Objects + c.V2Objects + c.Uploads*uploadParts
	e := estimate{objects: int64(all), copies: int64(c.Copies), mean: (int64(c.MinSize) + int64(c.MaxSize)) / 2}
	e.agentCopies = int64(math.Ceil(float64(all) * c.OnEvacuated))
	// Sizes are uniform over [min, max]: over a range of a block or more,
	// the rounding wastes half a block on average.
	perFile := (e.mean + blockSize - 1) / blockSize * blockSize
	if int64(c.MaxSize-c.MinSize) >= blockSize {
		perFile = e.mean + blockSize/2
	}
	files := e.objects*e.copies + e.agentCopies
	e.bytes = files*perFile + e.agentCopies*dbBytesPerObject + dbBytes
	return e
}

func (e estimate) String() string {
	return fmt.Sprintf("about %s: %s objects x %s mean x %d copies, plus %s copies the agents make",
		humanize.IBytes(uint64(e.bytes)), humanize.Comma(e.objects), humanize.IBytes(uint64(e.mean)), e.copies, humanize.Comma(e.agentCopies))
}

// chooseScratch picks the fleet's directory: --dir, or a new temporary
// directory in memory (/dev/shm, fast) when it has room for the estimate,
// else in the system's temporary directory. Without --force it refuses
// when the directory cannot hold the estimate.
func (d *demo) chooseScratch() error {
	est := d.estimate()
	freeSpace := freeBytes
	if d.hooks.free != nil {
		freeSpace = d.hooks.free
	}
	var candidates []string
	if d.Dir != "" {
		if err := os.MkdirAll(d.Dir, 0o755); err != nil {
			return fmt.Errorf("--dir: %w", err)
		}
		candidates = []string{d.Dir}
	} else {
		if mem := testbed.TempDir(); mem != "" {
			candidates = append(candidates, mem)
		}
		if tmp := os.TempDir(); !slices.Contains(candidates, tmp) {
			candidates = append(candidates, tmp)
		}
	}
	var (
		pick  string
		notes []string
	)
	for _, c := range candidates {
		free, err := freeSpace(c)
		if err != nil {
			// Unknown free space: no check there.
			pick = c
			notes = append(notes, fmt.Sprintf("%s (free space unknown: %v)", c, err))
			break
		}
		notes = append(notes, fmt.Sprintf("%s has %s free", c, humanize.IBytes(uint64(free))))
		if free >= est.bytes {
			pick = c
			break
		}
	}
	if pick == "" {
		if !d.Force {
			return usageError{fmt.Errorf("the demo would write %s, and %s. Write fewer or smaller objects (--objects, --max-size), "+
				"give --dir on a filesystem with room, or add --force to try anyway", est, joinAnd(notes))}
		}
		pick = candidates[0]
	}
	if d.Dir != "" {
		d.scratch = d.Dir
	} else {
		dir, err := os.MkdirTemp(pick, "rebalancer-demo-")
		if err != nil {
			return err
		}
		d.scratch, d.tmpDir = dir, true
	}
	d.say("The demo will write %s, into %s (%s).", est, d.scratch, notes[len(notes)-1])
	return nil
}

func joinAnd(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// populate writes the objects, showing progress: a bar on a terminal, a
// line every progressEvery otherwise.
func (d *demo) populate(ctx context.Context) error {
	est := d.estimate()
	var objects, bytes atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		d.progress(done, est, &objects, &bytes)
	}()
	objs := testbed.Objects{Count: d.Objects, MinSize: int64(d.MinSize), MaxSize: int64(d.MaxSize),
		Copies: d.Copies, Seed: d.Seed, Pin: d.Evacuate, PinFraction: d.OnEvacuated,
		Progress: func(b int64) { objects.Add(1); bytes.Add(b) }}
	var err error
	d.pop, err = d.fleet.Populate(ctx, objs)
	if err == nil && d.fleet.HasBuckets() {
		objs.Count = d.V2Objects
		d.v2, err = d.fleet.PopulateBuckets(ctx, testbed.BucketObjects{Objects: objs, Uploads: d.Uploads, Parts: uploadParts})
	}
	close(done)
	<-stopped
	return err
}

func (d *demo) progress(done <-chan struct{}, est estimate, objects, bytes *atomic.Int64) {
	every := d.progressEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	var bar *progressbar.ProgressBar
	if d.tty {
		every = 100 * time.Millisecond
		bar = progressbar.NewOptions64(est.objects, progressbar.OptionSetWriter(d.out),
			progressbar.OptionSetDescription("writing objects"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("obj"), progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth())
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			if bar != nil {
				bar.Set64(objects.Load())
				bar.Finish()
				fmt.Fprintln(d.out)
			}
			return
		case <-t.C:
			if bar != nil {
				bar.Set64(objects.Load())
				continue
			}
			n := objects.Load()
			d.say("  writing: %s of %s objects (%s, %d%%)", humanize.Comma(n), humanize.Comma(est.objects),
				humanize.IBytes(uint64(bytes.Load())), 100*n/max(est.objects, 1))
		}
	}
}
