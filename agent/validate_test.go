package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/TritonDataCenter/rebalancer"
)

func TestParseID(t *testing.T) {
	const canon = "463ec933-1d31-41f9-8e76-0db3191f6346"
	cases := []struct {
		in, want string
		ok       bool
	}{
		{canon, canon, true},
		{strings.ToUpper(canon), canon, true},
		{"463ec9331d3141f98e760db3191f6346", canon, true},
		{"463EC9331D3141F98E760DB3191F6346", canon, true},
		{"{" + canon + "}", "", false},
		{"urn:uuid:" + canon, "", false},
		{canon + ".db", "", false},
		{"../../" + canon[6:], "", false},
		{"463ec933-1d31-41f9-8e76-0db3191f634g", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		got, err := ParseID(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseID(%q) = %q, %v; want %q ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestCheckTask(t *testing.T) {
	good := rebalancer.Task{ObjectID: "7f3ee78a-2e64-4f3d-829f-a31c7c2c2b03", Owner: "d50c4fc4-f408-492f-b8bc-a0dd7c73683f",
		MD5Sum: "anything", Source: rebalancer.StorageNode{Datacenter: "dc", MantaStorageID: "3.stor.us-west.joyent.us"}}
	v2 := good
	v2.BucketID = "9a0a6b3e-0d0e-4c1c-9a7e-3b9f6f7c1d22"
	v2.ObjectNameHash = "5d41402abc4b2a76b9719d911017c592"
	with := func(base rebalancer.Task, f func(*rebalancer.Task)) rebalancer.Task { f(&base); return base }
	cases := []struct {
		name string
		task rebalancer.Task
		ok   bool
	}{
		{"v1", good, true},
		{"v2", v2, true},
		{"legacy test names", with(good, func(t *rebalancer.Task) { t.Owner = "rebalancer"; t.ObjectID = "area_codes_by_state.csv" }), true},
		{"port", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "localhost:8080" }), true},
		{"ip", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "127.0.0.1:65535" }), true},
		{"255 bytes", with(good, func(t *rebalancer.Task) { t.ObjectID = strings.Repeat("x", 255) }), true},
		{"256 bytes", with(good, func(t *rebalancer.Task) { t.ObjectID = strings.Repeat("x", 256) }), false},
		{"dotdot owner", with(good, func(t *rebalancer.Task) { t.Owner = ".." }), false},
		{"dot object", with(good, func(t *rebalancer.Task) { t.ObjectID = "." }), false},
		{"hidden object", with(good, func(t *rebalancer.Task) { t.ObjectID = ".x" }), false},
		{"slash", with(good, func(t *rebalancer.Task) { t.ObjectID = "a/b" }), false},
		{"backslash", with(good, func(t *rebalancer.Task) { t.ObjectID = `a\b` }), false},
		{"comma", with(good, func(t *rebalancer.Task) { t.ObjectID = "a,b" }), false},
		{"space", with(good, func(t *rebalancer.Task) { t.Owner = "a b" }), false},
		{"empty owner", with(good, func(t *rebalancer.Task) { t.Owner = "" }), false},
		{"v2 half", with(good, func(t *rebalancer.Task) { t.BucketID = v2.BucketID }), false},
		{"v2 other half", with(good, func(t *rebalancer.Task) { t.ObjectNameHash = v2.ObjectNameHash }), false},
		{"v2 short object", with(v2, func(t *rebalancer.Task) { t.ObjectID = "a" }), false},
		{"v2 upper hash", with(v2, func(t *rebalancer.Task) { t.ObjectNameHash = strings.ToUpper(v2.ObjectNameHash) }), false},
		{"v2 short hash", with(v2, func(t *rebalancer.Task) { t.ObjectNameHash = v2.ObjectNameHash[1:] }), false},
		{"v2 bad bucket", with(v2, func(t *rebalancer.Task) { t.BucketID = ".." }), false},
		{"source path", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "host/path" }), false},
		{"source userinfo", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "u@host" }), false},
		{"source empty port", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "host:" }), false},
		{"source port 0", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "host:0" }), false},
		{"source signed port", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "host:+80" }), false},
		{"source ipv6", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "[::1]:80" }), false},
		{"source empty", with(good, func(t *rebalancer.Task) { t.Source.MantaStorageID = "" }), false},
	}
	for _, c := range cases {
		if err := checkTask(c.task); (err == nil) != c.ok {
			t.Errorf("%s: checkTask = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestPaths(t *testing.T) {
	v1 := rebalancer.Task{ObjectID: "obj", Owner: "own", Source: rebalancer.StorageNode{MantaStorageID: "1.stor.example.com"}}
	v2 := v1
	v2.ObjectID = "abcdef"
	v2.BucketID = "bkt"
	v2.ObjectNameHash = "5d41402abc4b2a76b9719d911017c592"
	cases := []struct {
		task      rebalancer.Task
		dest, url string
	}{
		{v1, "/manta/own/obj", "http://1.stor.example.com/own/obj"},
		{v2, "/manta/v2/own/bkt/ab/abcdef,5d41402abc4b2a76b9719d911017c592",
			"http://1.stor.example.com/v2/own/bkt/ab/abcdef,5d41402abc4b2a76b9719d911017c592"},
	}
	for _, c := range cases {
		dest, err := destPath("/manta", c.task)
		if err != nil || dest != c.dest {
			t.Errorf("destPath = %q, %v; want %q", dest, err, c.dest)
		}
		if u := sourceURL(c.task); u != c.url {
			t.Errorf("sourceURL = %q, want %q", u, c.url)
		}
	}
	// The containment check holds even for a task that skipped validation.
	bad := v1
	bad.Owner = ".."
	if p, err := destPath("/manta", bad); err == nil {
		t.Errorf("destPath of an escaping task = %q", p)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Root != "/manta" || c.DataDir != "/var/tmp/rebalancer" || c.Workers != 4 || c.WorkersPerAssignment != 4 ||
		c.MaxQueued != 200 || c.DownloadTimeout != 120*time.Second || len(c.RetryDelays) != 3 ||
		c.Retention != 14*24*time.Hour || c.MaxBodyBytes != 64<<20 || c.Token != "" ||
		c.Metrics.Service != "1.rebalancer.localhost" || c.Metrics.Server != "127.0.0.1" || c.Metrics.Datacenter != "development" {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	one := Config{Workers: 1}.WithDefaults()
	if one.MaxQueued != 50 {
		t.Fatalf("max queued with one worker: %d", one.MaxQueued)
	}
	if noRetry := (Config{RetryDelays: []time.Duration{}}).WithDefaults(); len(noRetry.RetryDelays) != 0 {
		t.Fatal("an empty retry schedule was replaced")
	}
	bad := Config{Workers: -1, Root: "rel", RetryDelays: []time.Duration{-1}}.WithDefaults()
	err := bad.validate()
	if err == nil || !strings.Contains(err.Error(), "workers") || !strings.Contains(err.Error(), "root") || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("validate: %v", err)
	}
}
