package fast

import "encoding/json"

// A small scanner over JSON text that json.Valid has accepted. It reads an
// object's members the way JavaScript sees them: names compared exactly
// after unescaping (encoding/json matches struct fields without regard to
// case, so {"M":...} would pass for m), and every member reported in order,
// so that the caller's last assignment wins, as in JSON.parse.

// members calls fn with the name and value text of each member of the
// object obj, and reports whether obj is an object.
func members(obj []byte, fn func(name string, value []byte)) bool {
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
		name := unquote(obj[i:end])
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
