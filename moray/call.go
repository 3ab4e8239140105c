package moray

import (
	"context"
	"encoding/json"
)

// Call runs one RPC whose argument array the caller has encoded itself, and
// passes every item of every DATA reply to fn, in order. It is the
// connection machinery of Client (pooling, multiplexing, frames written
// whole, connections closed only between frames, timeouts) offered to other
// protocols that ride on Fast, such as buckets-mdapi's (package mdapi): an
// ERROR reply comes back as a *ServerError, a transport failure as a
// *TransportError, and an error from fn unchanged.
//
// args must be a JSON array; it is sent verbatim, so making it acceptable to
// the server, byte for byte, is the caller's job.
func (c *Client) Call(ctx context.Context, method string, args json.RawMessage, fn func(item json.RawMessage) error) error {
	return c.do(ctx, method, args, target{}, true, fn)
}
