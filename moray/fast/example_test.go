package fast_test

import (
	"bytes"
	"fmt"
	"log"

	"github.com/TritonDataCenter/rebalancer/moray/fast"
)

// A getObject request as a frame, and back: what goes over Moray's TCP
// connection.
func ExampleAppendFrame() {
	args, err := fast.MarshalData([]any{"manta", "/acct/stor/a.log", map[string]any{}})
	if err != nil {
		log.Fatal(err)
	}
	frame, err := fast.AppendFrame(nil, &fast.Message{Status: fast.StatusData, ID: 7, Method: "getObject", UTS: 1570611723062000, Data: args})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("header % x\n", frame[:fast.HeaderSize])

	m, err := fast.NewDecoder(bytes.NewReader(frame), 0).Decode()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s #%d %s\n", m.Method, m.ID, m.Data)
	// Output:
	// header 02 01 01 00 00 00 07 00 00 de ac 00 00 00 55
	// getObject #7 ["manta","/acct/stor/a.log",{}]
}
