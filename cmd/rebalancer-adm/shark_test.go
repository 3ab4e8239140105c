package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer"
	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// The shark commands through the CLI alone: a shark that holds objects is
// not safe (exit 3, with why and what to do), one evacuated to Complete is
// (exit 0) and stays drained until an operator puts it back; refused
// creates and the retry of a dry run change nothing.
func TestSharkCommands(t *testing.T) {
	const shark2 = "2.stor.demo.example"
	m := newManager(t, testbed.Config{Sharks: 4, Objects: testbed.Objects{Count: 120, Seed: 1, Pin: shark1}})

	r := m.cmd(t, "shark", "list")
	if r.code != 0 || !regexp.MustCompile(regexp.QuoteMeta(shark1)+`\s+\S+\s+in service\s`).MatchString(r.stdout) {
		t.Fatalf("shark list: %+v", r)
	}

	r = m.cmd(t, "shark", "check", "1.stor")
	if r.code != exitNotSafe || !regexp.MustCompile(`Safe to retire:\s+NO`).MatchString(r.stdout) || !strings.Contains(r.stdout, "Why they are still there:") ||
		!strings.Contains(r.stdout, "rebalancer-adm job create evacuate --shark "+shark1) || r.stderr != "" ||
		!strings.Contains(r.stdout, "Buckets (v2) objects were not looked for (") { // the fleet has no buckets tier
		t.Fatalf("check before the evacuation: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = m.cmd(t, "shark", "check", shark1, "--json", "--examples", "1")
	var doc struct {
		Safe    bool  `json:"safe"`
		Objects int64 `json:"objects"`
		Groups  []struct {
			Examples []any `json:"examples"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != exitNotSafe || doc.Safe || doc.Objects == 0 ||
		len(doc.Groups) == 0 || len(doc.Groups[0].Examples) != 1 {
		t.Fatalf("check --json: exit %d, %q (%v)", r.code, r.stdout, err)
	}

	id := m.create(t, "--shark", shark1)
	m.waitState(t, id, "Complete")
	r = m.cmd(t, "shark", "check", shark1)
	if r.code != 0 || !regexp.MustCompile(`Safe to retire:\s+yes`).MatchString(r.stdout) || !strings.Contains(r.stdout, "drained (by job "+id+")") {
		t.Fatalf("check after the evacuation: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	if r := m.cmd(t, "shark", "in", "1.stor", "--reason", "repaired"); r.code != 0 || !strings.Contains(r.stdout, shark1+": in service; jobs may place") {
		t.Fatalf("shark in: %+v", r)
	}
	if r := m.cmd(t, "shark", "check", shark1); r.code != exitNotSafe || !strings.Contains(r.stdout, "rebalancer-adm shark out "+shark1) {
		t.Fatalf("check of an empty shark in service: %+v", r)
	}
	if r := m.cmd(t, "shark", "out", shark2, "--reason", "disk replacement"); r.code != 0 || !strings.Contains(r.stdout, shark2+": drained") {
		t.Fatalf("shark out: %+v", r)
	}
	r = m.cmd(t, "shark", "list")
	if r.code != 0 || !regexp.MustCompile(regexp.QuoteMeta(shark2)+`\s+\S+\s+drained\s+operator\s+-\s+\S+ \S+\s+disk replacement`).MatchString(r.stdout) ||
		!regexp.MustCompile(regexp.QuoteMeta(shark1)+`\s+\S+\s+in service\s+operator\s+-\s+\S+ \S+\s+repaired`).MatchString(r.stdout) {
		t.Fatalf("shark list after in and out:\n%s", r.stdout)
	}
	if r := m.cmd(t, "shark", "out", "no.such.shark"); r.code != 1 || !strings.Contains(r.stderr, "404 Not Found") {
		t.Fatalf("out of an unknown shark: %+v", r)
	}

	// Refused creates leave the list as it was.
	before := m.cmd(t, "job", "list").stdout
	for _, shark := range []string{"no.such.shark", "2.stor.demo.exmaple"} {
		r := m.cmd(t, "job", "create", "evacuate", "--shark", shark)
		if r.code != 1 || !strings.Contains(r.stderr, "422 Unprocessable Entity") || strings.Contains(r.stderr, "exmaple.demo.example") {
			t.Fatalf("create on %s: %+v", shark, r)
		}
	}
	if after := m.cmd(t, "job", "list").stdout; after != before {
		t.Fatalf("refused creates changed the list:\n%s\nthen\n%s", before, after)
	}

	// A dry run is marked, and its retry refused with what to run.
	dry := m.create(t, "--shark", "3.stor.demo.example", "--dry-run")
	m.waitState(t, dry, "Complete")
	if r := m.cmd(t, "job", "list"); !regexp.MustCompile(dry + `\s+Evacuate\s+Complete \(dry run\)`).MatchString(r.stdout) {
		t.Fatalf("list with a dry run:\n%s", r.stdout)
	}
	if r := m.cmd(t, "job", "get", dry); !strings.Contains(r.stdout, "Complete (dry run)") {
		t.Fatalf("get of a dry run:\n%s", r.stdout)
	}
	r = m.cmd(t, "job", "retry", dry)
	if r.code != 1 || !strings.Contains(r.stderr, "409 Conflict") || !strings.Contains(r.stderr, "--dry-run") {
		t.Fatalf("retry of a dry run: %+v", r)
	}
	if after := m.cmd(t, "job", "list").stdout; strings.Count(after, "\n") != strings.Count(before, "\n")+1 {
		t.Fatalf("the refused retry added a job:\n%s", after)
	}
}

// A job that skips objects because a source shark fails says so, by
// source, with the cause, in get, objects and watch's end; its retry that
// moves nothing says why instead of suggesting another; the check lists
// them with the source and exits 3.
func TestCausesShown(t *testing.T) {
	const shark2 = "2.stor.demo.example"
	m := newManager(t, testbed.Config{Sharks: 3, Objects: testbed.Objects{Count: 120, Seed: 2, Pin: shark1}})
	m.fleet.Shark(shark2).FailMako(500)

	id := m.create(t, "--shark", shark1)
	m.waitState(t, id, "Complete")
	r := m.cmd(t, "job", "get", id)
	if r.code != 0 || !regexp.MustCompile(`by source\s+skipped \S+ [0-9,]+ from `+regexp.QuoteMeta(shark2)).MatchString(r.stdout) ||
		!regexp.MustCompile(`Shark left:\s+[0-9,]+ objects the job found still name `+regexp.QuoteMeta(shark1)).MatchString(r.stdout) {
		t.Fatalf("get:\n%s", r.stdout)
	}
	r = m.cmd(t, "job", "objects", id, "--status", "skipped")
	if r.code != 0 || !strings.Contains(r.stdout, "SOURCE") || !strings.Contains(r.stdout, shark2) || !strings.Contains(r.stdout, "500") {
		t.Fatalf("objects:\n%s", r.stdout)
	}
	r = m.cmd(t, "job", "watch", id)
	if r.code != 0 || !strings.Contains(r.stdout, "Largest: skipped") || !strings.Contains(r.stdout, "job retry "+id) {
		t.Fatalf("watch of the job:\n%s", r.stdout)
	}

	rr := m.cmd(t, "job", "retry", id)
	retry := strings.TrimSpace(rr.stdout)
	if rr.code != 0 {
		t.Fatalf("retry: %+v", rr)
	}
	m.waitState(t, retry, "Complete")
	r = m.cmd(t, "job", "watch", retry)
	if r.code != 0 || !regexp.MustCompile(`This retry moved nothing: all [0-9,]+ left were skipped .* reading from `+regexp.QuoteMeta(shark2)).MatchString(r.stdout) || strings.Contains(r.stdout, "job retry "+retry) {
		t.Fatalf("watch of the retry:\n%s", r.stdout)
	}

	r = m.cmd(t, "shark", "check", shark1)
	if r.code != exitNotSafe || !strings.Contains(r.stdout, "read from "+shark2) || !strings.Contains(r.stdout, "rebalancer-adm job retry "+retry) {
		t.Fatalf("check: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A job that ended before its discovery finished says so, rather than
// that discovery is running (issue 18: "0 of 0+ (discovery running)").
func TestStatusOfUnfinishedDiscovery(t *testing.T) {
	for _, tc := range []struct {
		state       rebalancer.JobState
		want, avoid string
	}{
		{rebalancer.JobFailed, "0 of 0 found (discovery did not finish)", "discovery running"},
		{rebalancer.JobStopped, "0 of 0 found (discovery did not finish)", "discovery running"},
		{rebalancer.JobRunning, "0 of 0+ (discovery running)", "did not finish"},
	} {
		var b strings.Builder
		st := &jobapi.JobStatus{State: tc.state, Error: "shark x: boom", Progress: &jobapi.Progress{}}
		if err := printStatus(&b, "j", st); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), tc.want) || strings.Contains(b.String(), tc.avoid) {
			t.Errorf("%s job:\n%s\nwant %q", tc.state, b.String(), tc.want)
		}
	}
}
