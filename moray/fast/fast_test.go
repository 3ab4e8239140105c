package fast

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/TritonDataCenter/rebalancer/internal/testutil"
)

const reqID = "8b5a6a3e-0d53-4c1e-9a5e-2d8f7f3b6c11"

func TestCRC(t *testing.T) {
	// docs/protocols.md "Checksums"; provenance in docs/golden.md.
	tests := []struct {
		in     string
		v2, v1 uint16
	}{
		{"123456789", 0xBB3D, 0x31C3},
		{"", 0, 0},
		{"a", 0xE8C1, 0x7C87},
		{`{"m":{"uts":1,"name":"x"},"d":["é"]}`, 0x5ECE, 0xC3E0},
		{`{"m":{"uts":1,"name":"x"},"d":["€"]}`, 0x323E, 0x1139},
	}
	for _, tt := range tests {
		if got := CRC16([]byte(tt.in)); got != tt.v2 {
			t.Errorf("CRC16(%q) = %#04x, want %#04x", tt.in, got, tt.v2)
		}
		if got := CRC16V1([]byte(tt.in)); got != tt.v1 {
			t.Errorf("CRC16V1(%q) = %#04x, want %#04x", tt.in, got, tt.v1)
		}
	}
	// A character outside the BMP is two UTF-16 units for the old checksum.
	if CRC16V1([]byte("😀")) == CRC16V1([]byte("\uFFFD")) {
		t.Error("astral character checksummed as one unit")
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The request vectors V1 to V10, as node-fast 3.1.3 encodes them (docs/golden.md).
func TestEncodeGoldenRequests(t *testing.T) {
	const ping = `0201010000000100000c3b000000717b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a2270696e67227d2c2264223a5b7b2264656570223a66616c73652c227265715f6964223a2238623561366133652d306435332d346331652d396135652d326438663766336236633131227d5d7d`
	tests := []struct {
		name string
		msg  Message
		hex  string
	}{
		{"V1 ping", Message{Status: StatusData, ID: 1, Method: "ping", UTS: 1700000000000000,
			Data: json.RawMessage(`[{"deep":false,"req_id":"` + reqID + `"}]`)}, ping},
		{"V2 ping, protocol version 1", Message{Version: Version1, Status: StatusData, ID: 1, Method: "ping", UTS: 1700000000000000,
			Data: json.RawMessage(`[{"deep":false,"req_id":"` + reqID + `"}]`)},
			"01010100000001" + "00005064" + "00000071" + ping[30:]},
		{"V4 getObject", Message{Status: StatusData, ID: 7, Method: "getObject", UTS: 1700000000000000,
			Data: json.RawMessage(`["manta","/acct/stor/a",{"req_id":"` + reqID + `"}]`)},
			`0201010000000700003003000000807b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a226765744f626a656374227d2c2264223a5b226d616e7461222c222f616363742f73746f722f61222c7b227265715f6964223a2238623561366133652d306435332d346331652d396135652d326438663766336236633131227d5d7d`},
		{"V5 putObject", Message{Status: StatusData, ID: 8, Method: "putObject", UTS: 1700000000000000,
			Data: json.RawMessage(`["manta","/acct/stor/a",{"a":1},{"req_id":"` + reqID + `","etag":"314BADAF"}]`)},
			`02010100000008000075ce0000009a7b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a227075744f626a656374227d2c2264223a5b226d616e7461222c222f616363742f73746f722f61222c7b2261223a317d2c7b227265715f6964223a2238623561366133652d306435332d346331652d396135652d326438663766336236633131222c2265746167223a223331344241444146227d5d7d`},
		{"V8 findObjects", Message{Status: StatusData, ID: 9, Method: "findObjects", UTS: 1700000000000000,
			Data: json.RawMessage(`["manta_storage","(manta_storage_id=1.stor.example.com)",{"req_id":"` + reqID + `","limit":100,"no_count":true}]`)},
			`020101000000090000da22000000bf7b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a2266696e644f626a65637473227d2c2264223a5b226d616e74615f73746f72616765222c22286d616e74615f73746f726167655f69643d312e73746f722e6578616d706c652e636f6d29222c7b227265715f6964223a2238623561366133652d306435332d346331652d396135652d326438663766336236633131222c226c696d6974223a3130302c226e6f5f636f756e74223a747275657d5d7d`},
		{"V9 sql", Message{Status: StatusData, ID: 10, Method: "sql", UTS: 1700000000000000,
			Data: json.RawMessage(`["SELECT MAX(_id) FROM manta;",[],{"limit":1,"no_count":true}]`)},
			`0201010000000a0000eb9a0000006e7b226d223a7b22757473223a313730303030303030303030303030302c226e616d65223a2273716c227d2c2264223a5b2253454c454354204d4158285f6964292046524f4d206d616e74613b222c5b5d2c7b226c696d6974223a312c226e6f5f636f756e74223a747275657d5d7d`},
		{"V10 edge values", Message{Status: StatusData, ID: MaxMsgID, Method: "x", UTS: 1, Data: json.RawMessage(`["é"]`)},
			`0201017fffffff00005ece000000257b226d223a7b22757473223a312c226e616d65223a2278227d2c2264223a5b22c3a9225d7d`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendFrame(nil, &tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if want := mustHex(t, tt.hex); !bytes.Equal(got, want) {
				t.Fatalf("frame\n got %x\nwant %x", got, want)
			}
			// And it decodes back to the same message.
			m, err := NewDecoder(bytes.NewReader(got), 0).Decode()
			if err != nil {
				t.Fatal(err)
			}
			want := tt.msg
			if want.Version == 0 {
				want.Version = Version2
			}
			if m.Version != want.Version || m.Status != want.Status || m.ID != want.ID || m.Method != want.Method ||
				m.UTS != want.UTS || !bytes.Equal(m.Data, want.Data) {
				t.Errorf("decoded %+v, want %+v", m, want)
			}
		})
	}
}

// The reply vectors V3, V6 and V7, and the END a real Moray sent (docs/golden.md).
func TestDecodeGoldenResponses(t *testing.T) {
	const (
		v3      = `020102000000010000c345000000337b226d223a7b22757473223a313730303030303030303030303030312c226e616d65223a2270696e67227d2c2264223a5b5d7d`
		v6      = `02010100000008000072d00000004b7b226d223a7b22757473223a313730303030303030303030303030322c226e616d65223a227075744f626a656374227d2c2264223a5b7b2265746167223a223737343036453235227d5d7d`
		v7      = `0201030000000800008b78000001157b226d223a7b22757473223a313730303030303030303030303030332c226e616d65223a227075744f626a656374227d2c2264223a7b226e616d65223a2245746167436f6e666c6963744572726f72222c226d657373616765223a226d616e74613a3a2f616363742f73746f722f612077617320657870656374656420746f20686176652065746167205c2233313442414441465c222c2062757420776173205c2237373430364532355c22222c22636f6e74657874223a7b226275636b6574223a226d616e7461222c226b6579223a222f616363742f73746f722f61222c226578706563746564223a223331344241444146222c2261637475616c223a223737343036453235227d2c22696e666f223a7b7d7d7d`
		realEnd = `02010200000001000021c4000000337b226d223a7b22757473223a313739353835353832393838363134362c226e616d65223a2270696e67227d2c2264223a5b5d7d`
	)
	// The stream test: V6 then an END for the same id decode to exactly two messages.
	end, err := AppendFrame(nil, &Message{Status: StatusEnd, ID: 8, Method: "putObject", UTS: 1700000000000004, Data: json.RawMessage(`[]`)})
	if err != nil {
		t.Fatal(err)
	}
	stream := append(mustHex(t, v3), mustHex(t, v6)...)
	stream = append(stream, end...)
	stream = append(stream, mustHex(t, v7)...)
	stream = append(stream, mustHex(t, realEnd)...)
	d := NewDecoder(bytes.NewReader(stream), 0)
	want := []struct {
		status Status
		id     uint32
		method string
		data   string
	}{
		{StatusEnd, 1, "ping", `[]`},
		{StatusData, 8, "putObject", `[{"etag":"77406E25"}]`},
		{StatusEnd, 8, "putObject", `[]`},
		{StatusError, 8, "putObject", ""},
		{StatusEnd, 1, "ping", `[]`},
	}
	for i, w := range want {
		m, err := d.Decode()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Status != w.status || m.ID != w.id || m.Method != w.method || (w.data != "" && string(m.Data) != w.data) {
			t.Errorf("message %d = %+v", i, m)
		}
		if m.Status == StatusError {
			e, err := ParseError(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			var ctx map[string]string
			json.Unmarshal(e.Context, &ctx)
			if e.Name != "EtagConflictError" || ctx["expected"] != "314BADAF" || ctx["actual"] != "77406E25" ||
				e.Message != `manta::/acct/stor/a was expected to have etag "314BADAF", but was "77406E25"` {
				t.Errorf("error %+v", e)
			}
		}
	}
	if _, err := d.Decode(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

// TestGoldenCapture replays the raw bytes of a getObject captured between
// node-moray and a real Moray: the request re-encodes byte for byte and the
// reply decodes.
func TestGoldenCapture(t *testing.T) {
	request, reply := testutil.Capture(t, "testdata/moray-getobject-capture.txt")
	req, err := NewDecoder(bytes.NewReader(request), 0).Decode()
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "getObject" || req.ID != 1 || req.Status != StatusData {
		t.Fatalf("request %+v", req)
	}
	again, err := AppendFrame(nil, req)
	if err != nil || !bytes.Equal(again, request) {
		t.Fatalf("re-encoded request differs:\n got %x\nwant %x", again, request)
	}
	d := NewDecoder(bytes.NewReader(reply), 0)
	data, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	end, err := d.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if data.Status != StatusData || end.Status != StatusEnd || data.ID != 1 || end.ID != 1 || string(end.Data) != "[]" {
		t.Fatalf("reply %+v / %+v", data, end)
	}
	var recs []struct {
		Bucket string          `json:"bucket"`
		Key    string          `json:"key"`
		Value  json.RawMessage `json:"value"`
		Etag   string          `json:"_etag"`
		Count  *int            `json:"_count"`
	}
	if err := json.Unmarshal(data.Data, &recs); err != nil || len(recs) != 1 {
		t.Fatalf("records: %v %d", err, len(recs))
	}
	if recs[0].Bucket != "manta" || recs[0].Etag != "9971A559" || recs[0].Count != nil || len(recs[0].Value) == 0 {
		t.Errorf("record %+v", recs[0])
	}
}

func frame(version, typ, status byte, id uint32, payload string, crcOverride ...uint32) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(payload))
	b[0], b[1], b[2] = version, typ, status
	b[3], b[4], b[5], b[6] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	crc := uint32(CRC16([]byte(payload)))
	if version == Version1 {
		crc = uint32(CRC16V1([]byte(payload)))
	}
	if len(crcOverride) > 0 {
		crc = crcOverride[0]
	}
	b[7], b[8], b[9], b[10] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	n := uint32(len(payload))
	b[11], b[12], b[13], b[14] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return append(b, payload...)
}

func TestDecodeRejects(t *testing.T) {
	good := `{"m":{"uts":1,"name":"x"},"d":[]}`
	tests := []struct {
		name  string
		in    []byte
		proto bool // a *ProtocolError, else the io error below
		ioErr error
	}{
		{"bad crc", frame(2, 1, 1, 1, good, 0x1234), true, nil},
		{"crc high bytes set", frame(2, 1, 1, 1, good, 0x10000|uint32(CRC16([]byte(good)))), true, nil},
		{"v1 crc on v2 frame", frame(2, 1, 1, 1, good, uint32(CRC16V1([]byte(good)))+1), true, nil},
		{"version 3", frame(3, 1, 1, 1, good), true, nil},
		{"version 0", frame(0, 1, 1, 1, good), true, nil},
		{"type 2", frame(2, 2, 1, 1, good), true, nil},
		{"status 0", frame(2, 1, 0, 1, good), true, nil},
		{"status 4", frame(2, 1, 4, 1, good), true, nil},
		{"msgid too large", frame(2, 1, 1, MaxMsgID+1, good), true, nil},
		{"not json", frame(2, 1, 1, 1, `{"m":`), true, nil},
		{"null payload", frame(2, 1, 1, 1, `null`), true, nil},
		{"array payload", frame(2, 1, 1, 1, `[1]`), true, nil},
		{"no m", frame(2, 1, 1, 1, `{"d":[]}`), true, nil},
		{"no name", frame(2, 1, 1, 1, `{"m":{"uts":1},"d":[]}`), true, nil},
		{"numeric name", frame(2, 1, 1, 1, `{"m":{"name":1},"d":[]}`), true, nil},
		{"d not array", frame(2, 1, 1, 1, `{"m":{"name":"x"},"d":{}}`), true, nil},
		{"d missing", frame(2, 1, 2, 1, `{"m":{"name":"x"}}`), true, nil},
		{"error d not object", frame(2, 1, 3, 1, `{"m":{"name":"x"},"d":[]}`), true, nil},
		{"error without message", frame(2, 1, 3, 1, `{"m":{"name":"x"},"d":{"name":"E"}}`), true, nil},
		{"trailing data", frame(2, 1, 1, 1, good+`{}`), true, nil},
		// json.Decoder.More does not see these: they end a value, not start one.
		{"stray ]", frame(2, 1, 1, 1, good+`]`), true, nil},
		{"stray }", frame(2, 1, 1, 1, good+` }`), true, nil},
		// node-fast servers refuse a falsy method name (FastError bad_data),
		// and AppendFrame cannot re-encode one.
		{"empty name", frame(2, 1, 1, 1, `{"m":{"uts":1,"name":""},"d":[]}`), true, nil},
		// JavaScript property names are case-sensitive, unlike
		// encoding/json's struct fields: node sees no m, d, name or message.
		{"upper-case m and d", frame(2, 1, 1, 1, `{"M":{"name":"x"},"D":[]}`), true, nil},
		{"upper-case name", frame(2, 1, 1, 1, `{"m":{"Name":"x"},"d":[]}`), true, nil},
		{"error with upper-case keys", frame(2, 1, 3, 1, `{"m":{"name":"x"},"d":{"Name":"E","Message":"m"}}`), true, nil},
		// A repeated member replaces the first, as in JSON.parse: this m has no name.
		{"m repeated without a name", frame(2, 1, 1, 1, `{"m":{"name":"x"},"m":{"uts":1},"d":[]}`), true, nil},
		{"m null", frame(2, 1, 1, 1, `{"m":null,"d":[]}`), true, nil},
		// node reads the payload as text, replacing invalid bytes, before it
		// checks the CRC: this frame fails there.
		{"invalid UTF-8", frame(2, 1, 1, 1, "{\"m\":{\"name\":\"x\"},\"d\":[\"\xff\"]}"), true, nil},
		{"too large", frame(2, 1, 1, 1, `{"m":{"name":"x"},"d":["`+strings.Repeat("a", 2000)+`"]}`), true, nil},
		{"truncated header", frame(2, 1, 1, 1, good)[:9], false, io.ErrUnexpectedEOF},
		{"truncated payload", frame(2, 1, 1, 1, good)[:HeaderSize+5], false, io.ErrUnexpectedEOF},
		{"empty stream", nil, false, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewDecoder(bytes.NewReader(tt.in), 1024).Decode()
			if err == nil {
				t.Fatalf("decoded %+v, want an error", m)
			}
			var pe *ProtocolError
			if tt.proto != errors.As(err, &pe) {
				t.Fatalf("error %v (%T), protocol error expected: %v", err, err, tt.proto)
			}
			if !tt.proto && err != tt.ioErr {
				t.Fatalf("error %v, want %v", err, tt.ioErr)
			}
		})
	}
	// A version 1 frame with its own checksum is accepted.
	if _, err := NewDecoder(bytes.NewReader(frame(1, 1, 2, 5, `{"m":{"name":"é"},"d":[]}`)), 0).Decode(); err != nil {
		t.Errorf("version 1 frame: %v", err)
	}
}

// What JSON.parse accepts and node-fast lets through decodes, with the
// values JavaScript would see.
func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name, payload string
		method, data  string
		uts           int64
	}{
		{"JSON white space around", " \t\r\n" + `{"m":{"uts":1,"name":"x"},"d":[]}` + " \t\r\n", "x", `[]`, 1},
		{"d repeated: the last one counts", `{"m":{"name":"x"},"d":{},"d":[1]}`, "x", `[1]`, 0},
		{"name repeated: the last one counts", `{"m":{"name":1,"name":"y"},"d":[]}`, "y", `[]`, 0},
		{"unknown members", `{"x":0,"m":{"uts":2,"name":"x","z":[]},"d":[{"a":1}]}`, "x", `[{"a":1}]`, 2},
		{"uts not an integer", `{"m":{"uts":"soon","name":"x"},"d":[]}`, "x", `[]`, 0},
		{"escaped member names", `{"\u006d":{"n\u0061me":"x"},"\u0064":[]}`, "x", `[]`, 0},
	}
	for _, tt := range tests {
		m, err := NewDecoder(bytes.NewReader(frame(2, 1, 1, 3, tt.payload)), 0).Decode()
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if m.Method != tt.method || string(m.Data) != tt.data || m.UTS != tt.uts {
			t.Errorf("%s: decoded method %q data %s uts %d, want %q %s %d", tt.name, m.Method, m.Data, m.UTS, tt.method, tt.data, tt.uts)
		}
	}
}

func TestAppendFrameRejects(t *testing.T) {
	tests := []struct {
		name string
		m    Message
	}{
		{"d not array", Message{Status: StatusData, Method: "x", Data: json.RawMessage(`{}`)}},
		{"d invalid json", Message{Status: StatusData, Method: "x", Data: json.RawMessage(`[1,`)}},
		{"d empty", Message{Status: StatusEnd, Method: "x"}},
		{"error without name", Message{Status: StatusError, Method: "x", Data: json.RawMessage(`{"message":"m"}`)}},
		{"error not object", Message{Status: StatusError, Method: "x", Data: json.RawMessage(`[]`)}},
		{"no method", Message{Status: StatusData, Data: json.RawMessage(`[]`)}},
		{"id out of range", Message{Status: StatusData, ID: MaxMsgID + 1, Method: "x", Data: json.RawMessage(`[]`)}},
		{"bad status", Message{Status: 9, Method: "x", Data: json.RawMessage(`[]`)}},
		{"bad version", Message{Version: 7, Status: StatusData, Method: "x", Data: json.RawMessage(`[]`)}},
		// Moray would checksum the text it decoded, with U+FFFD for the bad
		// byte, and crash on the mismatch.
		{"invalid UTF-8 in d", Message{Status: StatusData, Method: "x", Data: json.RawMessage("[\"\xff\"]")}},
		{"invalid UTF-8 in the method", Message{Status: StatusData, Method: "x\xff", Data: json.RawMessage(`[]`)}},
	}
	for _, tt := range tests {
		if b, err := AppendFrame([]byte("keep"), &tt.m); err == nil || string(b) != "keep" {
			t.Errorf("%s: AppendFrame = %q, %v; want an error and the buffer unchanged", tt.name, b, err)
		}
	}
}

func TestMarshalDataNoHTMLEscape(t *testing.T) {
	b, err := MarshalData([]any{"(&(a=b)(c<=d))", map[string]any{"k": "<>&"}})
	if err != nil || string(b) != `["(&(a=b)(c<=d))",{"k":"<>&"}]` {
		t.Errorf("MarshalData = %s, %v", b, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(frame(2, 1, 1, 1, `{"m":{"uts":1,"name":"x"},"d":[]}`))
	f.Add(frame(1, 1, 3, 7, `{"m":{"name":"getObject"},"d":{"name":"E","message":"m","context":{}}}`))
	f.Add(frame(2, 1, 2, MaxMsgID, `{"m":{"name":"€"},"d":["😀",1e400,{"a":[null]}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bytes.NewReader(in), 1<<16)
		for off := 0; ; {
			m, err := d.Decode()
			if err != nil {
				return
			}
			// What decodes is what JSON.parse would make of the payload,
			// as read by a second, independent parse.
			end := off + HeaderSize + int(binary.BigEndian.Uint32(in[off+11:]))
			checkLikeJSONParse(t, in[off+HeaderSize:end], m)
			off = end
			// And it re-encodes into a frame that decodes to the same
			// message.
			b, err := AppendFrame(nil, m)
			if err != nil {
				t.Fatalf("decoded %+v does not re-encode: %v", m, err)
			}
			m2, err := NewDecoder(bytes.NewReader(b), 0).Decode()
			if err != nil {
				t.Fatalf("re-encoded frame does not decode: %v", err)
			}
			if m2.Status != m.Status || m2.ID != m.ID || m2.Method != m.Method || m2.Version != m.Version ||
				!bytes.Equal(bytes.TrimSpace(m2.Data), bytes.TrimSpace(m.Data)) {
				t.Fatalf("round trip changed %+v into %+v", m, m2)
			}
		}
	})
}

// checkLikeJSONParse checks a decoded message against a generic parse of
// its payload: the payload is valid UTF-8 and one JSON value, an object
// whose m.name is the (non-empty) method and whose d is the data, member
// names compared exactly and the last of repeated members winning, as in
// JavaScript.
func checkLikeJSONParse(t *testing.T, payload []byte, m *Message) {
	t.Helper()
	if !utf8.Valid(payload) || !json.Valid(payload) {
		t.Fatalf("decoded a payload that is not valid UTF-8 JSON: %q", payload)
	}
	var body map[string]any
	if err := unmarshalNumbers(payload, &body); err != nil {
		t.Fatalf("decoded a payload that is not an object: %q: %v", payload, err)
	}
	meta, _ := body["m"].(map[string]any)
	if name, _ := meta["name"].(string); name == "" || name != m.Method {
		t.Fatalf("decoded method %q from %q", m.Method, payload)
	}
	want, ok := body["d"]
	var got any
	if err := unmarshalNumbers(m.Data, &got); !ok || err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded data %s from %q", m.Data, payload)
	}
}

// unmarshalNumbers is json.Unmarshal keeping numbers as written (1e400
// does not fit a float64, and JSON.parse makes it Infinity).
func unmarshalNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// BenchmarkDecode decodes the reply of the captured getObject, one DATA
// frame carrying a record and an END, over and over.
func BenchmarkDecode(b *testing.B) {
	_, reply := testutil.Capture(b, "testdata/moray-getobject-capture.txt")
	d := NewDecoder(&cycleReader{b: reply}, 0)
	b.SetBytes(int64(len(reply)))
	b.ReportAllocs()
	for b.Loop() {
		for range 2 {
			if _, err := d.Decode(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// cycleReader reads b over and over.
type cycleReader struct {
	b   []byte
	off int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}
