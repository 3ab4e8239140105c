package rebalancer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// specValue is the sample object of docs/golden.md, in the key order it was
// stored in a real Moray.
const specValue = `{"contentLength":9099176,"contentMD5":"L9NrIZXTY37AYVZN9+gZ7w==","contentType":"text/plain",` +
	`"creator":"61368287-aa5b-6c0f-f3a9-931a228215e4","dirname":"/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs",` +
	`"etag":"2e08b069-d132-c25c-920c-945e3329e450","headers":{},"key":"/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs/07e023da.log",` +
	`"mtime":1570611723062,"name":"07e023da.log","objectId":"2e08b069-d132-c25c-920c-945e3329e450",` +
	`"owner":"61368287-aa5b-6c0f-f3a9-931a228215e4","roles":[],` +
	`"sharks":[{"datacenter":"dc0","manta_storage_id":"3.stor.example.com"},{"datacenter":"dc0","manta_storage_id":"1.stor.example.com"}],` +
	`"type":"object","vnode":23352}`

func TestParseObject(t *testing.T) {
	o, err := ParseObject(json.RawMessage(specValue))
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "2e08b069-d132-c25c-920c-945e3329e450" || o.Owner != "61368287-aa5b-6c0f-f3a9-931a228215e4" ||
		o.Key != "/61368287-aa5b-6c0f-f3a9-931a228215e4/stor/logs/07e023da.log" ||
		o.ContentLength != 9099176 || o.ContentMD5 != "L9NrIZXTY37AYVZN9+gZ7w==" || o.IsBucket || o.Name != "07e023da.log" {
		t.Errorf("parsed %+v", o)
	}
	if len(o.Sharks) != 2 || o.Sharks[0] != (StorageNode{"dc0", "3.stor.example.com"}) {
		t.Errorf("sharks %v", o.Sharks)
	}
	if string(o.Metadata) != specValue {
		t.Error("metadata not kept verbatim")
	}
	if !o.HasShark("1.stor.example.com") || o.HasShark("2.stor.example.com") {
		t.Error("HasShark")
	}
	if src, ok := o.Source("3.stor.example.com"); !ok || src.MantaStorageID != "1.stor.example.com" {
		t.Errorf("Source = %v, %v", src, ok)
	}
	task := o.Task(StorageNode{"dc0", "1.stor.example.com"})
	if task.ObjectID != o.ID || task.Owner != o.Owner || task.MD5Sum != o.ContentMD5 || task.IsV2() {
		t.Errorf("task %+v", task)
	}
}

func TestParseObjectVariants(t *testing.T) {
	tests := []struct {
		name  string
		value string
		kind  ObjectErrorKind // 0: success
		check func(Object) bool
	}{
		{"legacy aliases", `{"key":"/k","owner":"o","object_id":"i","content_length":12,"content_md5":"m"}`, 0,
			func(o Object) bool {
				return o.ID == "i" && o.ContentLength == 12 && o.ContentMD5 == "m" && o.Sharks == nil
			}},
		{"large length", `{"key":"/k","owner":"o","objectId":"i","contentLength":9007199254740993}`, 0,
			func(o Object) bool { return o.ContentLength == 9007199254740993 }},
		{"bucket null", `{"key":"k","owner":"o","objectId":"i","bucket_id":null}`, 0,
			func(o Object) bool { return o.IsBucket && o.BucketID == "" }},
		{"bucket", `{"key":"k","name":"n","owner":"o","objectId":"i","bucket_id":"b"}`, 0,
			func(o Object) bool {
				t := o.Task(StorageNode{})
				return o.IsBucket && o.BucketID == "b" && t.IsV2() && t.ObjectNameHash == ObjectNameHash("n")
			}},
		{"missing key", `{"owner":"o","objectId":"i"}`, ErrorBadMantaObject, nil},
		{"missing owner", `{"key":"k","objectId":"i"}`, ErrorBadMantaObject, nil},
		{"missing objectId", `{"key":"k","owner":"o"}`, ErrorBadMantaObject, nil},
		{"empty objectId", `{"key":"k","owner":"o","objectId":""}`, ErrorBadMantaObject, nil},
		{"numeric key", `{"key":1,"owner":"o","objectId":"i"}`, ErrorBadMantaObject, nil},
		{"not an object", `[1]`, ErrorBadMantaObject, nil},
		{"negative length", `{"key":"k","owner":"o","objectId":"i","contentLength":-1}`, ErrorBadContentLength, nil},
		{"fractional length", `{"key":"k","owner":"o","objectId":"i","contentLength":1.5}`, ErrorBadContentLength, nil},
		{"string length", `{"key":"k","owner":"o","objectId":"i","contentLength":"12"}`, ErrorBadContentLength, nil},
		{"bad sharks", `{"key":"k","owner":"o","objectId":"i","sharks":{"a":1}}`, ErrorMissingSharks, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseObject(json.RawMessage(tt.value))
			if tt.kind == 0 {
				if err != nil || !tt.check(o) {
					t.Fatalf("ParseObject = %+v, %v", o, err)
				}
				return
			}
			var bad *BadObjectError
			if !errors.As(err, &bad) || bad.Kind != tt.kind {
				t.Fatalf("ParseObject error = %v, want kind %v", err, tt.kind)
			}
		})
	}
}

func TestReplaceShark(t *testing.T) {
	to := StorageNode{Datacenter: "dc1", MantaStorageID: "2.stor.example.com"}
	got, err := ReplaceShark(json.RawMessage(specValue), "1.stor.example.com", to)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(specValue,
		`{"datacenter":"dc0","manta_storage_id":"1.stor.example.com"}`,
		`{"datacenter":"dc1","manta_storage_id":"2.stor.example.com"}`, 1)
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	tests := []struct {
		name, in, want string
	}{
		{
			"formatting, key order and big numbers kept",
			"{ \"z\" : 18446744073709551617,\n \"sharks\" : [ {\"manta_storage_id\":\"a\", \"datacenter\":\"x\", \"extra\":1} ,\n {\"datacenter\":\"y\",\"manta_storage_id\":\"b\"} ], \"a\": 1.50e3, \"s\":\"\\u00e9\" }",
			"{ \"z\" : 18446744073709551617,\n \"sharks\" : [ {\"manta_storage_id\":\"a\", \"datacenter\":\"x\", \"extra\":1} ,\n {\"datacenter\":\"dc1\",\"manta_storage_id\":\"2.stor.example.com\"} ], \"a\": 1.50e3, \"s\":\"\\u00e9\" }",
		},
		{
			"first element, nested sharks key elsewhere untouched",
			`{"headers":{"sharks":[{"manta_storage_id":"b"}]},"sharks":[{"datacenter":"y","manta_storage_id":"b"}]}`,
			`{"headers":{"sharks":[{"manta_storage_id":"b"}]},"sharks":[{"datacenter":"dc1","manta_storage_id":"2.stor.example.com"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ReplaceShark(json.RawMessage(tt.in), "b", to)
			if err != nil || string(out) != tt.want {
				t.Errorf("got\n%s (%v)\nwant\n%s", out, err, tt.want)
			}
		})
	}
}

func TestReplaceSharkErrors(t *testing.T) {
	to := StorageNode{"dc1", "2.stor"}
	tests := []struct {
		name, in string
		kind     ObjectErrorKind // 0: ErrSharkNotListed
	}{
		{"not listed", `{"sharks":[{"datacenter":"d","manta_storage_id":"a"}]}`, 0},
		{"empty sharks", `{"sharks":[]}`, 0},
		{"listed twice", `{"sharks":[{"datacenter":"d","manta_storage_id":"b"},{"datacenter":"e","manta_storage_id":"b"}]}`, ErrorDuplicateShark},
		{"no sharks", `{"key":"k"}`, ErrorMissingSharks},
		{"sharks not array", `{"sharks":{}}`, ErrorMissingSharks},
		{"sharks element not node", `{"sharks":[1]}`, ErrorMissingSharks},
		{"two sharks keys", `{"sharks":[],"sharks":[{"datacenter":"d","manta_storage_id":"b"}]}`, ErrorBadMantaObject},
		{"not an object", `[]`, ErrorBadMantaObject},
		{"truncated", `{"sharks":[{"datacenter":"d","manta_storage_id":"b"}]`, ErrorBadMantaObject},
		{"trailing data", `{"sharks":[{"datacenter":"d","manta_storage_id":"b"}]} {}`, ErrorBadMantaObject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := ReplaceShark(json.RawMessage(tt.in), "b", to)
			if err == nil {
				t.Fatalf("ReplaceShark = %s, want an error", out)
			}
			if tt.kind == 0 {
				if !errors.Is(err, ErrSharkNotListed) {
					t.Fatalf("error %v, want ErrSharkNotListed", err)
				}
				return
			}
			var bad *BadObjectError
			if !errors.As(err, &bad) || bad.Kind != tt.kind {
				t.Fatalf("error %v, want kind %v", err, tt.kind)
			}
		})
	}
}

func TestSkipError(t *testing.T) {
	cause := errors.New("boom")
	err := error(&SkipError{Reason: SkipAgentBusy, Err: cause})
	var se *SkipError
	if !errors.As(err, &se) || se.Reason != SkipAgentBusy || !errors.Is(err, cause) {
		t.Error("SkipError does not unwrap")
	}
	if err.Error() != "skipped: agent_busy: boom" {
		t.Errorf("Error() = %q", err.Error())
	}
}
