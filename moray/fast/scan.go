package fast

import (
	"bytes"
	"encoding/json"
)

// A small scanner over JSON text that json.Valid has accepted. It reads an
// object's members the way JavaScript sees them: names compared exactly
// after unescaping (encoding/json matches struct fields without regard to
// case, so {"M":...} would pass for m), and every member reported in order,
// so that the caller's last assignment wins, as in JSON.parse.

// Members calls fn with the name (unescaped) and the value text of each
// member of the JSON object obj, in order, and reports whether obj is an
// object. A name that appears twice is passed twice, so that a caller
// keeping the last value reads obj as JSON.parse does. obj must be valid
// JSON, as the Data of every message a Decoder returns is. name is only
// valid during the call.
func Members(obj []byte, fn func(name, value []byte)) bool { return members(obj, fn) }

// Unquote returns the value of the JSON string literal s, which must be
// valid JSON.
func Unquote(s []byte) string { return unquote(s) }

func members(obj []byte, fn func(name, value []byte)) bool {
	i := skipSpace(obj, 0)
	if i == len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if obj[i] == '}' {
		return true
	}
	for {
		end := stringEnd(obj, i)
		name := obj[i+1 : end-1]
		if bytes.IndexByte(name, '\\') >= 0 {
			name = []byte(unquote(obj[i:end]))
		}
		i = skipSpace(obj, skipSpace(obj, end)+1) // past the ':'
		end = valueEnd(obj, i)
		fn(name, obj[i:end])
		i = skipSpace(obj, end)
		if obj[i] == '}' {
			return true
		}
		i = skipSpace(obj, i+1) // past the ','
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// unquote returns the value of the JSON string literal s.
func unquote(s []byte) string {
	for _, c := range s {
		if c == '\\' {
			var v string
			json.Unmarshal(s, &v) // valid JSON: cannot fail
			return v
		}
	}
	return string(s[1 : len(s)-1])
}

// parseInt returns the integer b spells in JSON, or 0 if b is not one an
// int64 holds.
func parseInt(b []byte) int64 {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return int64(-n)
	case !neg && n < 1<<63:
		return int64(n)
	}
	return 0
}
