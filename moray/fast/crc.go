package fast

import "unicode/utf8"

// CRC16 is the checksum of protocol version 2: CRC-16/ARC (polynomial 0x8005
// reflected, init 0, no final xor) over the UTF-8 bytes of the payload.
func CRC16(data []byte) uint16 {
	var crc uint16
	for _, b := range data {
		crc = arcTable[byte(crc)^b] ^ crc>>8
	}
	return crc
}

// CRC16V1 is the checksum of protocol version 1, from the old node-crc
// package: CRC-16/XMODEM (polynomial 0x1021, init 0), fed not with the UTF-8
// bytes but with the low byte of each UTF-16 code unit of the JavaScript
// string. For ASCII payloads the two are the same. Invalid UTF-8 is read the
// way Go reads it, as U+FFFD per bad byte.
func CRC16V1(data []byte) uint16 {
	var crc uint16
	feed := func(unit uint16) {
		crc = xmodemTable[byte(crc>>8)^byte(unit)] ^ crc<<8
	}
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		data = data[n:]
		if r >= 0x10000 {
			r -= 0x10000
			feed(uint16(0xD800 + r>>10))
			feed(uint16(0xDC00 + r&0x3FF))
			continue
		}
		feed(uint16(r))
	}
	return crc
}

var (
	arcTable    = makeTable(func(crc uint16) uint16 { return reflectedStep(crc, 0xA001) })
	xmodemTable = makeTable(func(crc uint16) uint16 { return forwardStep(crc<<8, 0x1021) })
)

func makeTable(entry func(uint16) uint16) (t [256]uint16) {
	for i := range t {
		t[i] = entry(uint16(i))
	}
	return t
}

func reflectedStep(crc, poly uint16) uint16 {
	for range 8 {
		if crc&1 != 0 {
			crc = crc>>1 ^ poly
		} else {
			crc >>= 1
		}
	}
	return crc
}

func forwardStep(crc, poly uint16) uint16 {
	for range 8 {
		if crc&0x8000 != 0 {
			crc = crc<<1 ^ poly
		} else {
			crc <<= 1
		}
	}
	return crc
}
