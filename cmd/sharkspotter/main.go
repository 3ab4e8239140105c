// Command sharkspotter lists every object that has a copy on one shark
// (storage node), scanning each metadata shard's "manta" bucket either
// through Moray (the sql RPC, as the legacy sharkspotter does) or, with
// --direct-db, straight from the read-only PostgreSQL copies that pgclone
// provisions. See package sharkspotter for how objects are matched.
//
// Output goes to standard output or --output: one JSON object per line,
//
//	{"shard":1,"_id":1234,"etag":"314BADAF","shark":"1.stor.example.com","manta_value":{...}}
//
// with manta_value the object's metadata exactly as stored, or with
// --ids-only just the objectId per line. Logs and progress are bunyan
// records on standard error (see internal/logging). The exit status is 0 when every shard was scanned, 1 when
// a shard failed (what was found is still written), 2 for bad usage.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/cmdline"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
)

type cli struct {
	Shark      string           `short:"s" required:"" help:"Storage id of the shark, e.g. 1.stor.us-east.joyent.us; .DOMAIN is appended when the id does not contain the domain." placeholder:"ID"`
	Domain     string           `short:"d" help:"Manta domain (e.g. us-east.joyent.us): shard N is reached at N.moray.DOMAIN, or N.rebalancer-postgres.DOMAIN with --direct-db." placeholder:"DOMAIN" env:"SHARKSPOTTER_DOMAIN"`
	MinShard   *int             `short:"m" help:"First shard of the range to scan (default 1)." placeholder:"N"`
	MaxShard   *int             `short:"M" help:"Last shard of the range to scan (default: --min-shard)." placeholder:"N"`
	Shards     []string         `help:"Shards to scan instead of a range: numbers and ranges, e.g. 1,2,5-8." placeholder:"LIST" sep:","`
	DirectDB   bool             `short:"D" name:"direct-db" help:"Read PostgreSQL directly instead of going through Moray."`
	Moray      []string         `sep:"none" help:"Moray address of shard N, instead of looking up N.moray.DOMAIN. Repeatable." placeholder:"N=HOST:PORT"`
	DSN        []string         `name:"dsn" sep:"none" help:"PostgreSQL connection of shard N for --direct-db (a postgres:// URL or key=value string), instead of host=N.rebalancer-postgres.DOMAIN port=5432 user=postgres dbname=moray. Repeatable." placeholder:"N=DSN"`
	ChunkSize  int64            `short:"c" help:"Ids per Moray query (default 1000) or rows per PostgreSQL query (default 2000)." placeholder:"N"`
	Workers    int              `short:"t" default:"10" help:"Shards scanned at once, 1 to 100 (default 10)." placeholder:"N"`
	Begin      int64            `short:"b" help:"Start each shard's scan at this id." placeholder:"ID"`
	End        int64            `short:"e" help:"End each shard's scan at this id (0: the end)." placeholder:"ID"`
	Exclude    []string         `name:"exclude-key-prefix" sep:"none" help:"Leave out objects whose key contains this string (e.g. /stor/logs/). Repeatable." placeholder:"TEXT"`
	Exhaustive bool             `help:"Parse every object's metadata instead of only those whose text names the shark (slower)."`
	IDsOnly    bool             `short:"O" name:"ids-only" help:"Print only the objectId of each object, one per line."`
	Output     string           `short:"f" default:"-" help:"Write the objects to this file (\"-\": standard output)." placeholder:"FILE"`
	NoValidate bool             `short:"x" name:"skip-validate" help:"Do not check that the shark has a record in manta_storage (on shard 1's Moray)."`
	Progress   time.Duration    `default:"10s" help:"Interval between progress reports on standard error (default 10s; 0: none)." placeholder:"DURATION"`
	LogLevel   string           `default:"info" enum:"debug,info,warn,error" help:"Log level: debug, info, warn or error."`
	Version    kong.VersionFlag `help:"Print the version and exit."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const description = `Lists the objects that have a copy on a shark, scanning every metadata shard
through its Moray (default) or its read-only PostgreSQL copy (--direct-db).

Each object is written as one JSON line:
  {"shard":N,"_id":ID,"etag":"...","shark":"...","manta_value":{...metadata as stored...}}
or, with --ids-only, as its objectId. Logs and progress go to standard error as
bunyan records (one JSON line each; pipe them to bunyan to read them).
Exit status: 0 when every shard was scanned, 1 when a shard failed (objects found
are still written), 2 for bad usage.`

// usageError is bad input, exit status 2.
type usageError struct{ error }

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	var c cli
	if _, code, ok := (cmdline.Command{Name: "sharkspotter", Description: description, Stdout: stdout, Stderr: stderr}).Parse(&c, args); !ok {
		return code
	}
	level, _ := logging.ParseLevel(c.LogLevel) // kong checked the name
	log := logging.New(stderr, "sharkspotter", level)
	if err := spot(ctx, &c, stdout, log); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "sharkspotter:", err)
			return 2
		}
		log.Error("scan failed", "err", err)
		return 1
	}
	return 0
}

// plan is the validated command line.
type plan struct {
	shark  string
	shards []int
	moray  map[int]string
	dsns   map[int]string
	after  map[int]int64
}

func (c *cli) plan() (plan, error) {
	bad := func(format string, args ...any) (plan, error) {
		return plan{}, usageError{fmt.Errorf(format, args...)}
	}
	p := plan{shark: strings.TrimSpace(c.Shark)}
	if p.shark == "" {
		return bad("--shark is empty")
	}
	if c.Domain != "" && !strings.Contains(p.shark, c.Domain) {
		p.shark += "." + c.Domain
	}
	switch {
	case len(c.Shards) > 0 && (c.MinShard != nil || c.MaxShard != nil):
		return bad("give either --shards or --min-shard/--max-shard, not both")
	case len(c.Shards) > 0:
		var err error
		if p.shards, err = parseShardList(c.Shards); err != nil {
			return plan{}, usageError{err}
		}
	default:
		lo := 1
		if c.MinShard != nil {
			lo = *c.MinShard
		}
		hi := lo
		if c.MaxShard != nil {
			hi = *c.MaxShard
		}
		if lo < 0 || hi < lo {
			return bad("bad shard range %d to %d", lo, hi)
		}
		if hi-lo >= 100000 {
			return bad("shard range %d to %d is too large", lo, hi)
		}
		for s := lo; s <= hi; s++ {
			p.shards = append(p.shards, s)
		}
	}
	if c.Workers < 1 || c.Workers > 100 {
		return bad("--workers must be between 1 and 100, not %d", c.Workers)
	}
	if c.ChunkSize < 0 {
		return bad("--chunk-size must be positive")
	}
	if c.Begin < 0 || c.End < 0 {
		return bad("--begin and --end must not be negative")
	}
	if c.End > 0 && c.End < c.Begin {
		return bad("--end %d is before --begin %d", c.End, c.Begin)
	}
	for _, e := range c.Exclude {
		if e == "" {
			return bad("--exclude-key-prefix must not be empty")
		}
	}
	var err error
	if p.moray, err = parseShardMap("--moray", c.Moray); err != nil {
		return plan{}, err
	}
	if p.dsns, err = parseShardMap("--dsn", c.DSN); err != nil {
		return plan{}, err
	}
	if c.Domain == "" {
		have := p.moray
		what := "--moray"
		if c.DirectDB {
			have, what = p.dsns, "--dsn"
		}
		var missing []string
		for _, s := range p.shards {
			if have[s] == "" {
				missing = append(missing, strconv.Itoa(s))
			}
		}
		if len(missing) > 0 {
			return bad("no --domain, and no %s for shard %s", what, strings.Join(missing, ","))
		}
		if !c.NoValidate && p.moray[1] == "" {
			return bad("checking the shark needs shard 1's Moray: give --domain, --moray 1=HOST:PORT, or --skip-validate")
		}
	}
	if c.Begin > 1 {
		p.after = map[int]int64{}
		for _, s := range p.shards {
			p.after[s] = c.Begin - 1
		}
	}
	return p, nil
}

// parseShardList reads "1,2,5-8".
func parseShardList(items []string) ([]int, error) {
	var out []int
	for _, item := range items {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b-a >= 100000 {
			return nil, fmt.Errorf("--shards: bad shard or range %q", item)
		}
		for s := a; s <= b; s++ {
			if slices.Contains(out, s) {
				return nil, fmt.Errorf("--shards: shard %d listed twice", s)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// parseShardMap reads repeated "N=VALUE" flags.
func parseShardMap(flag string, items []string) (map[int]string, error) {
	m := map[int]string{}
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		n, err := strconv.Atoi(strings.TrimSpace(k))
		if !ok || err != nil || n < 0 || strings.TrimSpace(v) == "" {
			return nil, usageError{fmt.Errorf("%s %q: want SHARD=VALUE", flag, item)}
		}
		if _, dup := m[n]; dup {
			return nil, usageError{fmt.Errorf("%s: shard %d given twice", flag, n)}
		}
		m[n] = strings.TrimSpace(v)
	}
	return m, nil
}

// spot runs the scan and writes what it finds.
func spot(ctx context.Context, c *cli, stdout io.Writer, log *slog.Logger) (err error) {
	p, err := c.plan()
	if err != nil {
		return err
	}
	dns := moray.DNSShards{Domain: c.Domain}
	resolver := moray.ShardFunc(func(ctx context.Context, shard int) (string, error) {
		if addr := p.moray[shard]; addr != "" {
			return addr, nil
		}
		if c.Domain == "" {
			return "", fmt.Errorf("shard %d: no --domain and no --moray: %w", shard, moray.ErrUnknownShard)
		}
		return dns.ResolveShard(ctx, shard)
	})
	clients := moray.NewShards(resolver, moray.Options{Logger: log})
	defer clients.Close()

	if !c.NoValidate {
		node, err := moray.LookupShark(ctx, clients.Client(1), p.shark)
		if err != nil {
			return fmt.Errorf("checking shark %s in manta_storage (shard 1; --skip-validate skips this): %w", p.shark, err)
		}
		log.Info("shark found", "shark", node.MantaStorageID, "datacenter", node.Datacenter)
	}

	out := stdout
	if c.Output != "-" {
		f, err := os.Create(c.Output)
		if err != nil {
			return usageError{err}
		}
		defer func() {
			if cerr := f.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
		out = f
	}
	w := bufio.NewWriterSize(out, 256<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // keep the metadata's bytes as stored
	type line struct {
		Shard int             `json:"shard"`
		ID    int64           `json:"_id"`
		Etag  string          `json:"etag"`
		Shark string          `json:"shark"`
		Value json.RawMessage `json:"manta_value"`
	}
	prog := newProgress(log, p.shards, c.Progress)
	visit := func(o rebalancer.Object) error {
		prog.found++
		if c.IDsOnly {
			_, err := fmt.Fprintln(w, o.ID)
			return err
		}
		return enc.Encode(line{Shard: o.Shard, ID: o.ScanID, Etag: o.Etag, Shark: p.shark, Value: o.Metadata})
	}

	opts := sharkspotter.Options{Shards: p.shards, Workers: c.Workers, EndID: c.End, ExcludeKeyPrefixes: c.Exclude,
		Exhaustive: c.Exhaustive, Logger: log, OnProgress: prog.update}
	var src rebalancer.ObjectSource
	if c.DirectDB {
		src = &sharkspotter.PostgresScanner{Options: opts, Domain: c.Domain, DSNs: p.dsns, Chunk: int(c.ChunkSize)}
	} else {
		src = &sharkspotter.MorayScanner{Options: opts, Clients: clients, Window: c.ChunkSize}
	}
	log.Info("scanning", "shark", p.shark, "shards", len(p.shards), "first_shard", p.shards[0],
		"last_shard", p.shards[len(p.shards)-1], "direct_db", c.DirectDB)
	scanErr := src.Discover(ctx, rebalancer.DiscoverRequest{Shark: p.shark, After: p.after}, visit)
	if err := w.Flush(); err != nil && scanErr == nil {
		scanErr = fmt.Errorf("writing output: %w", err)
	}
	prog.report("done")
	return scanErr
}

// progress follows the scan and logs it now and then. Its methods are
// called on the goroutine that visits objects, so it needs no lock.
type progress struct {
	log      *slog.Logger
	every    time.Duration
	start    time.Time
	last     time.Time
	shards   map[int]sharkspotter.Progress
	total    int
	found    int64
	lastSeen int64
}

func newProgress(log *slog.Logger, shards []int, every time.Duration) *progress {
	now := time.Now()
	return &progress{log: log, every: every, start: now, last: now, shards: map[int]sharkspotter.Progress{}, total: len(shards)}
}

func (p *progress) update(sp sharkspotter.Progress) {
	p.shards[sp.Shard] = sp
	if p.every > 0 && time.Since(p.last) >= p.every {
		p.report("progress")
	}
}

func (p *progress) report(msg string) {
	now := time.Now()
	var done int
	var rows, through, maxID int64
	for _, sp := range p.shards {
		if sp.Done {
			done++
		}
		rows += sp.Rows
		through += min(sp.Through, sp.Max)
		maxID += sp.Max
	}
	attrs := []any{"found", p.found, "rows_read", rows, "shards_done", done, "shards", p.total,
		"elapsed", now.Sub(p.start).Round(time.Second).String()}
	if d := now.Sub(p.last).Seconds(); msg == "progress" && d > 0 {
		attrs = append(attrs, "found_per_s", int64(float64(p.found-p.lastSeen)/d))
	}
	if maxID > 0 && msg == "progress" {
		attrs = append(attrs, "percent_of_known_ids", fmt.Sprintf("%.1f", 100*float64(through)/float64(maxID)))
	}
	p.log.Info(msg, attrs...)
	p.last, p.lastSeen = now, p.found
}
