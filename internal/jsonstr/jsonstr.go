// Package jsonstr writes JSON strings by hand, byte for byte as one of the
// module's peers writes them, for the places where the bytes matter and
// not just the value: a Moray etag is a checksum of the text, buckets-mdapi
// finds the end of a frame by re-serializing its payload, and golden tests
// pin requests down to the byte.
//
// Every form escapes '"', '\\' and the control characters U+0000 to
// U+001F: \b, \t, \n, \f and \r in their short forms, the others as \u00XX
// in lower-case hex. They differ in what they do with the rest:
//
//   - AppendGo is encoding/json's form with HTML escaping off (what
//     fast.MarshalData writes, and what node's JSON.parse reads back
//     exactly): invalid UTF-8 becomes \ufffd, and U+2028 and U+2029 are
//     escaped. moray's requests and internal/logging's bunyan records use
//     it.
//   - AppendSerde is serde_json's form: everything else goes out raw, DEL,
//     U+2028 and U+2029 included. The input must be valid UTF-8 (serde_json
//     strings are). Package mdapi's requests and mdapitest's replies use
//     it.
//
// Node's JSON.stringify writes what AppendSerde writes, except that it
// escapes the lone surrogates a JavaScript string may hold. Package
// moraytest, which models JavaScript strings as WTF-8 to reproduce Moray's
// stored text, keeps its own writer for that reason.
package jsonstr

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// AppendGo appends s as a JSON string exactly as encoding/json writes it
// with HTML escaping off: invalid UTF-8 becomes \ufffd, and U+2028 and
// U+2029 are escaped.
func AppendGo(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = appendEscape(append(b, s[start:i]...), c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendSerde appends s, which must be valid UTF-8, as a JSON string
// exactly as serde_json writes it: only '"', '\\' and control characters
// are escaped.
func AppendSerde[S ~string | ~[]byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			b = appendEscape(append(b, s[start:i]...), c)
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscape appends the escape of an ASCII character that every form
// escapes.
func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\t':
		return append(b, '\\', 't')
	case '\n':
		return append(b, '\\', 'n')
	case '\f':
		return append(b, '\\', 'f')
	case '\r':
		return append(b, '\\', 'r')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}
