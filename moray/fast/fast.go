// Package fast implements the Fast RPC protocol that Moray (and
// buckets-mdapi) speak: length-prefixed, checksummed JSON messages over TCP.
//
// A frame is a 15-byte header followed by a JSON payload:
//
//	VERSION(1) TYPE(1) STATUS(1) MSGID(4) CRC(4) DLEN(4) DATA(DLEN)
//
// all big-endian, where DATA is {"m":{"uts":<µs>,"name":<method>},"d":<args>}.
// A request is one DATA message; its reply is zero or more DATA messages
// followed by one END, or a single ERROR whose d is {name, message, ...}.
//
// A real Moray server crashes on a malformed frame, or on a connection closed
// in the middle of one, so this package is strict in both directions:
// AppendFrame refuses to build a frame that a server would reject, and
// Decoder rejects every deviation with a *ProtocolError. Writers should send
// each frame with a single Write.
package fast

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Protocol constants.
const (
	HeaderSize = 15         // bytes before the payload
	MaxMsgID   = 0x7FFFFFFF // message ids are in 0..MaxMsgID
	TypeJSON   = 0x01       // the only payload type

	Version1 = 0x01 // legacy checksum (CRC16V1); decoded, never sent by default
	Version2 = 0x02 // CRC-16/ARC; what this package sends

	// DefaultMaxFrame bounds a frame's payload when the decoder has no limit
	// of its own. The protocol has none, but one record of a Moray reply is a
	// few kilobytes, so a larger frame means a broken or hostile peer.
	DefaultMaxFrame = 64 << 20
)

// Status is a message's kind.
type Status uint8

const (
	StatusData  Status = 0x01 // a request, or one item of a reply
	StatusEnd   Status = 0x02 // the end of a successful reply
	StatusError Status = 0x03 // a failed reply; Data is an error object
)

func (s Status) String() string {
	switch s {
	case StatusData:
		return "DATA"
	case StatusEnd:
		return "END"
	case StatusError:
		return "ERROR"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Message is one Fast message.
type Message struct {
	Version byte   // Version1 or Version2; zero encodes as Version2
	Status  Status // DATA, END or ERROR
	ID      uint32 // message id, 0..MaxMsgID; a reply carries its request's id
	Method  string // m.name: the RPC method (echoed in replies)
	UTS     int64  // m.uts: microseconds since the epoch when the message was built

	// Data is d: the JSON array of arguments (requests) or results (DATA and
	// END replies), or the error object of an ERROR reply. It is kept raw so
	// that numbers and unknown fields survive.
	Data json.RawMessage
}

// Error is the payload of an ERROR message: a server-side error such as
// EtagConflictError or ObjectNotFoundError. Context and Info are kept raw.
type Error struct {
	Name      string          `json:"name"`
	Message   string          `json:"message"`
	Context   json.RawMessage `json:"context,omitempty"`
	Info      json.RawMessage `json:"info,omitempty"`
	ASEErrors json.RawMessage `json:"ase_errors,omitempty"`
}

func (e *Error) Error() string { return e.Name + ": " + e.Message }

// ParseError decodes the Data of an ERROR message.
func ParseError(data json.RawMessage) (*Error, error) {
	var e Error
	if err := checkErrorData(bytes.Clone(data), &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ProtocolError reports a frame that breaks the protocol. After one, the
// byte stream cannot be trusted and the connection must be closed.
type ProtocolError struct {
	Reason string
	MsgID  uint32 // when known
}

func (e *ProtocolError) Error() string { return "fast: protocol error: " + e.Reason }

func protoErr(id uint32, format string, args ...any) error {
	return &ProtocolError{Reason: fmt.Sprintf(format, args...), MsgID: id}
}

// AppendFrame appends the encoded frame of m to buf. It checks everything a
// receiver checks, so a frame it returns is one a server accepts: version,
// status, id range, a method name, and Data of the right shape (an array for
// DATA and END, an error object for ERROR). The JSON it writes escapes no
// HTML characters, as node's JSON.stringify does.
func AppendFrame(buf []byte, m *Message) ([]byte, error) {
	version := m.Version
	if version == 0 {
		version = Version2
	}
	if version != Version1 && version != Version2 {
		return buf, fmt.Errorf("fast: cannot encode version %d", version)
	}
	if m.Status < StatusData || m.Status > StatusError {
		return buf, fmt.Errorf("fast: cannot encode status %d", m.Status)
	}
	if m.ID > MaxMsgID {
		return buf, fmt.Errorf("fast: message id %d out of range", m.ID)
	}
	if m.Method == "" {
		return buf, errors.New("fast: message without a method name")
	}
	// A receiver checks the CRC over the text it decoded, in which node
	// has replaced every invalid byte with U+FFFD: a frame with invalid
	// UTF-8 fails there (and a Moray server crashes on it).
	if !utf8.ValidString(m.Method) {
		return buf, fmt.Errorf("fast: method name %q is not valid UTF-8", m.Method)
	}
	data := bytes.TrimSpace(m.Data)
	if !utf8.Valid(data) {
		return buf, fmt.Errorf("fast: %s data for %q is not valid UTF-8", m.Status, m.Method)
	}
	if m.Status == StatusError {
		if err := checkErrorData(data, &Error{}); err != nil {
			return buf, err
		}
	} else if len(data) == 0 || data[0] != '[' || !json.Valid(data) {
		return buf, fmt.Errorf("fast: %s data for %q must be a JSON array", m.Status, m.Method)
	}

	start := len(buf)
	buf = append(buf, make([]byte, HeaderSize)...)
	buf = append(buf, `{"m":{"uts":`...)
	buf = strconv.AppendInt(buf, m.UTS, 10)
	buf = append(buf, `,"name":`...)
	buf = appendJSONString(buf, m.Method)
	buf = append(buf, `},"d":`...)
	buf = append(buf, data...)
	buf = append(buf, '}')

	payload := buf[start+HeaderSize:]
	if uint64(len(payload)) > 0xFFFFFFFF {
		return buf[:start], errors.New("fast: payload too large")
	}
	var crc uint16
	if version == Version1 {
		crc = CRC16V1(payload)
	} else {
		crc = CRC16(payload)
	}
	h := buf[start : start+HeaderSize]
	h[0] = version
	h[1] = TypeJSON
	h[2] = byte(m.Status)
	binary.BigEndian.PutUint32(h[3:], m.ID)
	binary.BigEndian.PutUint32(h[7:], uint32(crc))
	binary.BigEndian.PutUint32(h[11:], uint32(len(payload)))
	return buf, nil
}

// MarshalData encodes v as a Fast Data value: JSON without HTML escaping and
// without a trailing newline.
func MarshalData(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func appendJSONString(buf []byte, s string) []byte {
	// Method names are plain ASCII, which encodes as itself.
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\'
	}
	if plain {
		buf = append(buf, '"')
		buf = append(buf, s...)
		return append(buf, '"')
	}
	b, _ := MarshalData(s) // a string always encodes
	return append(buf, b...)
}

// checkErrorData checks that data is what node-fast accepts as an ERROR's
// d, an object with string members name and message, and fills in e,
// whose raw members then point into data.
func checkErrorData(data []byte, e *Error) error {
	if !json.Valid(data) {
		return errors.New("fast: error data must be a JSON object")
	}
	var name, message []byte
	*e = Error{}
	ok := members(data, func(key, v []byte) {
		switch string(key) {
		case "name":
			name = v
		case "message":
			message = v
		case "context":
			e.Context = v
		case "info":
			e.Info = v
		case "ase_errors":
			e.ASEErrors = v
		}
	})
	if !ok {
		return errors.New("fast: error data must be a JSON object")
	}
	if len(name) == 0 || name[0] != '"' || len(message) == 0 || message[0] != '"' {
		return errors.New("fast: error data needs string name and message")
	}
	e.Name, e.Message = unquote(name), unquote(message)
	return nil
}

// Decoder reads messages from a byte stream.
type Decoder struct {
	r        *bufio.Reader
	maxFrame int
}

// NewDecoder returns a decoder reading from r that rejects payloads larger
// than maxFrame bytes (DefaultMaxFrame when maxFrame <= 0).
func NewDecoder(r io.Reader, maxFrame int) *Decoder {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10), maxFrame: maxFrame}
}

// Decode reads the next message. It returns io.EOF at a clean end of stream
// (between frames), io.ErrUnexpectedEOF when the stream ends inside a frame,
// and a *ProtocolError for a malformed frame.
func (d *Decoder) Decode() (*Message, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(d.r, h[:]); err != nil {
		return nil, err
	}
	id := binary.BigEndian.Uint32(h[3:])
	version, typ, status := h[0], h[1], Status(h[2])
	switch {
	case version != Version1 && version != Version2:
		return nil, protoErr(id, "unsupported version %d", version)
	case typ != TypeJSON:
		return nil, protoErr(id, "unsupported type %d", typ)
	case status < StatusData || status > StatusError:
		return nil, protoErr(id, "unsupported status %d", status)
	case id > MaxMsgID:
		return nil, protoErr(id, "message id %d out of range", id)
	}
	crcField := binary.BigEndian.Uint32(h[7:])
	size := binary.BigEndian.Uint32(h[11:])
	if uint64(size) > uint64(d.maxFrame) {
		return nil, protoErr(id, "frame of %d bytes exceeds the %d-byte limit", size, d.maxFrame)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(d.r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	var crc uint16
	if version == Version1 {
		crc = CRC16V1(payload)
	} else {
		crc = CRC16(payload)
	}
	// The whole 32-bit field must equal the 16-bit checksum.
	if crcField != uint32(crc) {
		return nil, protoErr(id, "checksum mismatch: header %#x, payload %#x", crcField, crc)
	}
	return parsePayload(version, status, id, payload)
}

// parsePayload checks a payload as node-fast does, reading it as
// JSON.parse would (member names compared exactly; of a repeated member,
// the last counts), and refuses what a node-fast peer refuses: invalid
// UTF-8 (which fails node's CRC check, computed over the decoded text),
// anything but one JSON object, a missing or empty m.name (a server
// replies bad_data; AppendFrame could not echo it), and d of the wrong
// shape.
func parsePayload(version byte, status Status, id uint32, payload []byte) (*Message, error) {
	if !utf8.Valid(payload) {
		return nil, protoErr(id, "payload is not valid UTF-8")
	}
	// json.Valid refuses trailing data after the value too, which a
	// json.Decoder's More does not see when it starts with ']' or '}'.
	if !json.Valid(payload) {
		return nil, protoErr(id, "payload is not a JSON object: invalid JSON, or data after it")
	}
	var meta, d []byte
	if !members(payload, func(key, v []byte) {
		switch string(key) {
		case "m":
			meta = v
		case "d":
			d = v
		}
	}) {
		return nil, protoErr(id, "payload is not a JSON object")
	}
	var name, uts []byte
	if len(meta) > 0 && meta[0] == '{' {
		members(meta, func(key, v []byte) {
			switch string(key) {
			case "name":
				name = v
			case "uts":
				uts = v
			}
		})
	}
	if len(name) == 0 || name[0] != '"' {
		return nil, protoErr(id, "payload lacks m.name")
	}
	m := &Message{Version: version, Status: status, ID: id, Method: unquote(name), Data: d}
	if m.Method == "" {
		return nil, protoErr(id, "payload has an empty method name (m.name)")
	}
	// uts is informational; a peer sending a float, a huge number or no
	// number at all is tolerated rather than fatal, as node-fast does.
	m.UTS = parseInt(uts)
	if status == StatusError {
		if err := checkErrorData(d, &Error{}); err != nil {
			return nil, protoErr(id, "%v", err)
		}
	} else if len(d) == 0 || d[0] != '[' {
		return nil, protoErr(id, "%s data is not an array", status)
	}
	return m, nil
}
