package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/logging"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
	"github.com/TritonDataCenter/rebalancer/moray/moraytest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no shark", []string{"-d", "example.com"}, "missing flags: --shark"},
		{"unknown flag", []string{"-s", "1.stor", "--frobnicate"}, "unknown flag --frobnicate"},
		{"list and range", []string{"-s", "1.stor", "-d", "x.com", "--shards", "1,2", "-m", "1"}, "either --shards or --min-shard"},
		{"bad list", []string{"-s", "1.stor", "-d", "x.com", "--shards", "1,x"}, `bad shard or range "x"`},
		{"backwards list range", []string{"-s", "1.stor", "-d", "x.com", "--shards", "5-3"}, `bad shard or range "5-3"`},
		{"repeated shard", []string{"-s", "1.stor", "-d", "x.com", "--shards", "1-3,2"}, "shard 2 listed twice"},
		{"backwards range", []string{"-s", "1.stor", "-d", "x.com", "-m", "4", "-M", "2"}, "bad shard range 4 to 2"},
		{"no workers", []string{"-s", "1.stor", "-d", "x.com", "-t", "0"}, "--workers must be between 1 and 100"},
		{"too many workers", []string{"-s", "1.stor", "-d", "x.com", "-t", "101"}, "--workers must be between 1 and 100"},
		{"negative chunk", []string{"-s", "1.stor", "-d", "x.com", "-c", "-5"}, "--chunk-size"},
		{"end before begin", []string{"-s", "1.stor", "-d", "x.com", "-b", "100", "-e", "50"}, "--end 50 is before --begin 100"},
		{"bad moray", []string{"-s", "1.stor", "--moray", "one=127.0.0.1:2020"}, `--moray "one=127.0.0.1:2020": want SHARD=VALUE`},
		{"moray twice", []string{"-s", "1.stor", "--moray", "1=a:1", "--moray", "1=b:1"}, "--moray: shard 1 given twice"},
		{"no domain", []string{"-s", "1.stor", "-m", "1", "-M", "3", "--moray", "2=a:1"}, "no --domain, and no --moray for shard 1,3"},
		{"no domain direct", []string{"-s", "1.stor", "-D", "--moray", "1=a:1"}, "no --domain, and no --dsn for shard 1"},
		{"cannot validate", []string{"-s", "1.stor", "-D", "-m", "2", "--dsn", "2=postgres://h/moray"}, "--skip-validate"},
		{"empty exclusion", []string{"-s", "1.stor", "-d", "x.com", "--exclude-key-prefix", ""}, "must not be empty"},
		{"bad log level", []string{"-s", "1.stor", "-d", "x.com", "--log-level", "loud"}, "--log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", stderr, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := runCLI(t, "--help")
	if code != 0 {
		t.Errorf("exit status %d", code)
	}
	for _, want := range []string{"--shark=ID", "--direct-db", "--shards=LIST", "--ids-only", "--exclude-key-prefix", "--dsn=N=DSN", "rebalancer-postgres"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help does not mention %q:\n%s", want, stdout)
		}
	}
}

const shark = "1.stor.example.com"

// morayShards starts n moraytest shards holding objects: on each shard,
// object i (from 1) is on the shark when i is even, and under /stor/logs/
// when i is a multiple of 4. Shard 1 also has the manta_storage bucket.
func morayShards(t *testing.T, n, perShard int) (addrs []string, values map[string]string) {
	values = map[string]string{}
	for s := 1; s <= n; s++ {
		srv := moraytest.Start(t)
		addrs = append(addrs, srv.Addr())
		if err := srv.CreateMantaBucket(); err != nil {
			t.Fatal(err)
		}
		if s == 1 {
			if err := srv.CreateStorageBucket(); err != nil {
				t.Fatal(err)
			}
			if err := srv.AddShark(moraytest.Shark{StorageNode: rebalancer.StorageNode{Datacenter: "dc0", MantaStorageID: shark}}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i <= perShard; i++ {
			on := "2.stor.example.com"
			if i%2 == 0 {
				on = shark
			}
			dir := "stor"
			if i%4 == 0 {
				dir = "stor/logs"
			}
			key := fmt.Sprintf("/acct/%s/s%d-o%d", dir, s, i)
			v := fmt.Sprintf(`{"key":%q,"owner":"acct","objectId":"s%d-o%d","type":"object","headers":{"m-note":"<&>"},`+
				`"sharks":[{"datacenter":"dc0","manta_storage_id":"3.stor.example.com"},{"datacenter":"dc0","manta_storage_id":%q}]}`, key, s, i, on)
			if _, err := srv.Put("manta", key, json.RawMessage(v)); err != nil {
				t.Fatal(err)
			}
			if on == shark {
				values[fmt.Sprintf("s%d-o%d", s, i)] = v
			}
		}
	}
	return addrs, values
}

func morayFlags(addrs []string) []string {
	var args []string
	for i, a := range addrs {
		args = append(args, "--moray", fmt.Sprintf("%d=%s", i+1, a))
	}
	return args
}

type outLine struct {
	Shard int             `json:"shard"`
	ID    int64           `json:"_id"`
	Etag  string          `json:"etag"`
	Shark string          `json:"shark"`
	Value json.RawMessage `json:"manta_value"`
}

func TestScanThroughMorayToFile(t *testing.T) {
	addrs, values := morayShards(t, 3, 60)
	out := filepath.Join(t.TempDir(), "objs.json")
	args := append(morayFlags(addrs), "-s", "1.stor", "-d", "example.com", "-m", "1", "-M", "3", "-c", "7", "-f", out)
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q with --output", stdout)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l outLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		obj, err := rebalancer.ParseObject(l.Value)
		if err != nil {
			t.Fatal(err)
		}
		want, ok := values[obj.ID]
		if !ok || seen[obj.ID] {
			t.Errorf("object %s: unexpected or repeated", obj.ID)
		}
		seen[obj.ID] = true
		if string(l.Value) != want {
			t.Errorf("manta_value\n%s\nwant as stored\n%s", l.Value, want)
		}
		if l.Shark != shark || l.Etag != moraytest.Etag([]byte(want)) || l.ID <= 0 || !strings.HasPrefix(obj.ID, fmt.Sprintf("s%d-", l.Shard)) {
			t.Errorf("line %s", sc.Text())
		}
	}
	if len(seen) != len(values) {
		t.Errorf("%d objects written, want %d", len(seen), len(values))
	}
	for _, want := range []string{`"msg":"shark found"`, `"msg":"done"`, `"found":90`, `"shards_done":3`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not say %s:\n%s", want, stderr)
		}
	}
	recs, err := logging.Check(strings.NewReader(stderr))
	if err != nil {
		t.Errorf("stderr is not bunyan records: %v", err)
	}
	for _, r := range recs {
		if r.Name != "sharkspotter" {
			t.Errorf("record named %q: %+v", r.Name, r)
		}
	}
}

func TestScanIDsOnlyExcludingAndRange(t *testing.T) {
	addrs, _ := morayShards(t, 2, 40)
	args := append(morayFlags(addrs), "-s", shark, "--shards", "2", "-O", "--exclude-key-prefix", "/stor/logs/",
		"-b", "5", "-e", "30", "--log-level", "error")
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	got := strings.Fields(stdout)
	slices.Sort(got)
	var want []string
	for i := 5; i <= 30; i++ {
		if i%2 == 0 && i%4 != 0 {
			want = append(want, fmt.Sprintf("s2-o%d", i))
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ids %v, want %v", got, want)
	}
	if stderr != "" {
		t.Errorf("stderr at --log-level error: %s", stderr)
	}
}

func TestFailures(t *testing.T) {
	addrs, values := morayShards(t, 1, 20)
	empty := moraytest.Start(t) // a shard without the manta bucket
	args := append(morayFlags(addrs), "--moray", "2="+empty.Addr(), "-s", shark, "-m", "1", "-M", "2", "-O")
	code, stdout, stderr := runCLI(t, args...)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if n := len(strings.Fields(stdout)); n != len(values) {
		t.Errorf("%d ids from the healthy shard, want %d", n, len(values))
	}
	if !strings.Contains(stderr, `"msg":"scan failed"`) || !strings.Contains(stderr, "shard 2: ") {
		t.Errorf("stderr does not report shard 2:\n%s", stderr)
	}

	// A shark without a manta_storage record is refused before scanning.
	code, stdout, stderr = runCLI(t, append(morayFlags(addrs), "-s", "9.stor.example.com")...)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "9.stor.example.com") || !strings.Contains(stderr, "--skip-validate") {
		t.Errorf("unknown shark: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
}

func TestScanDirectDB(t *testing.T) {
	var dsnFlags []string
	want := map[string]bool{}
	for s := 1; s <= 2; s++ {
		dsn := pgtest.NewDatabase(t)
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE manta (_id BIGINT, _txn_snap INTEGER, _key TEXT PRIMARY KEY, _value TEXT NOT NULL,
			_etag CHAR(8) NOT NULL, _mtime BIGINT NOT NULL, _vnode BIGINT, dirname TEXT, name TEXT, owner TEXT, objectid TEXT, type TEXT)`); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 30; i++ {
			on := "2.stor.example.com"
			if i%3 == 0 {
				on = shark
				want[fmt.Sprintf("s%d-o%d", s, i)] = true
			}
			key := fmt.Sprintf("/acct/stor/s%d-o%d", s, i)
			v := fmt.Sprintf(`{"key":%q,"owner":"acct","objectId":"s%d-o%d","type":"object","sharks":[{"datacenter":"dc0","manta_storage_id":%q}]}`, key, s, i, on)
			if _, err := db.Exec(`INSERT INTO manta (_id, _key, _value, _etag, _mtime, type) VALUES ($1, $2, $3, $4, 0, 'object')`,
				i, key, v, moraytest.Etag([]byte(v))); err != nil {
				t.Fatal(err)
			}
		}
		dsnFlags = append(dsnFlags, "--dsn", fmt.Sprintf("%d=%s", s, dsn))
	}
	args := append(dsnFlags, "-D", "-x", "-s", shark, "--shards", "1-2", "-c", "4")
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var l outLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		obj, err := rebalancer.ParseObject(l.Value)
		if err != nil {
			t.Fatal(err)
		}
		got[obj.ID] = true
	}
	if len(got) != len(want) {
		t.Errorf("found %d objects, want %d", len(got), len(want))
	}
	for id := range want {
		if !got[id] {
			t.Errorf("object %s not found", id)
		}
	}
}
