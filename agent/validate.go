package agent

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/TritonDataCenter/rebalancer"
)

// ParseID returns the canonical (lowercase, hyphenated) form of an
// assignment id. It accepts the hyphenated and the 32-digit hex forms of a
// UUID, in either case, as the legacy agent does, and nothing else: the id
// names a database row and appears in logs, so it must be well-formed.
func ParseID(s string) (string, error) {
	if len(s) != 36 && len(s) != 32 {
		return "", fmt.Errorf("assignment id %q is not a UUID", truncate(s, 80))
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("assignment id %q is not a UUID: %w", truncate(s, 80), err)
	}
	return u.String(), nil
}

// maxComponent is the longest path component most filesystems accept.
const maxComponent = 255

// checkComponent accepts what can safely be one path component under the
// Manta root: canonical UUIDs (what Manta uses) and the plain names the
// legacy tests use ("rebalancer", "area_codes_by_state.csv"). Only
// letters, digits, '.', '_' and '-' are allowed, and no leading dot, so
// "..", "." and hidden names (such as the agent's own temp directory) are
// impossible.
func checkComponent(field, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s is empty", field)
	case len(v) > maxComponent:
		return fmt.Errorf("%s is %d bytes long, more than %d", field, len(v), maxComponent)
	case v[0] == '.':
		return fmt.Errorf("%s %q starts with a dot", field, truncate(v, 80))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%s %q contains %q: only letters, digits, '.', '_' and '-' are allowed", field, truncate(v, 80), c)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkStorageID accepts a shark's storage id: a host name or address made
// of letters, digits, '.' and '-', with an optional ":port". Anything else
// (a path, a user-info part, a query) could turn the source URL into a
// request for something other than an object on a shark.
func checkStorageID(v string) error {
	host, port, hasPort := strings.Cut(v, ":")
	if host == "" || len(v) > 253+6 {
		return fmt.Errorf("source storage id %q is not a host name", truncate(v, 80))
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !isAlnum(c) && c != '.' && c != '-' {
			return fmt.Errorf("source storage id %q is not a host name", truncate(v, 80))
		}
	}
	if hasPort {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 || strings.TrimLeft(port, "0123456789") != "" {
			return fmt.Errorf("source storage id %q has a bad port", truncate(v, 80))
		}
	}
	return nil
}

// checkTask validates everything in t that ends up in a path or a URL.
// md5sum is deliberately not checked: a wrong checksum is reported as the
// task's MD5Mismatch, as in the legacy.
func checkTask(t rebalancer.Task) error {
	if err := checkComponent("owner", t.Owner); err != nil {
		return err
	}
	if err := checkComponent("object_id", t.ObjectID); err != nil {
		return err
	}
	if err := checkStorageID(t.Source.MantaStorageID); err != nil {
		return err
	}
	switch {
	case t.BucketID == "" && t.ObjectNameHash == "":
		return nil
	case t.BucketID == "" || t.ObjectNameHash == "":
		// The legacy agent silently treats such a task as v1, writing a
		// bucket object where no one would look for it.
		return errors.New("bucket_id and object_name_hash must be given together")
	}
	if err := checkComponent("bucket_id", t.BucketID); err != nil {
		return err
	}
	if len(t.ObjectNameHash) != 32 || !isLowerHex(t.ObjectNameHash) {
		return fmt.Errorf("object_name_hash %q is not 32 lowercase hex digits", truncate(t.ObjectNameHash, 80))
	}
	if len(t.ObjectID) < 2 {
		return fmt.Errorf("object_id %q is too short for a v2 object", t.ObjectID)
	}
	return nil
}

// checkPayload validates a posted assignment and returns its canonical id.
// Sources must be allowed by hosts (nil allows any).
func checkPayload(p rebalancer.AssignmentPayload, hosts *allowList) (string, error) {
	id, err := ParseID(p.ID)
	if err != nil {
		return "", err
	}
	seen := make(map[string]int, len(p.Tasks))
	for i, t := range p.Tasks {
		if err := checkTask(t); err != nil {
			return "", fmt.Errorf("task %d: %w", i, err)
		}
		if !hosts.allows(t.Source.MantaStorageID) {
			return "", fmt.Errorf("task %d: %w", i, notAllowedError(t.Source.MantaStorageID))
		}
		if j, dup := seen[t.ObjectID]; dup {
			return "", fmt.Errorf("tasks %d and %d both copy object_id %s", j, i, t.ObjectID)
		}
		seen[t.ObjectID] = i
	}
	return id, nil
}

// allowList is Config.AllowSources, parsed. A nil *allowList allows
// every source.
type allowList struct {
	suffixes []string        // ".stor.us-east.joyent.us", lowercase
	exact    map[string]bool // "host" or "host:port", lowercase
}

// parseAllowSources parses an allow-list of sources: entries starting with a
// dot are domain suffixes, others a host or host:port. An empty list gives
// nil: any source.
func parseAllowSources(entries []string) (*allowList, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	h := &allowList{exact: map[string]bool{}}
	for _, e := range entries {
		v := strings.ToLower(strings.TrimSpace(e))
		if suffix, ok := strings.CutPrefix(v, "."); ok {
			if suffix == "" || strings.Contains(suffix, ":") || checkStorageID(suffix) != nil {
				return nil, fmt.Errorf("source host %q: a domain suffix is a dot and a domain, such as .stor.us-east.joyent.us, without a port", e)
			}
			h.suffixes = append(h.suffixes, v)
			continue
		}
		if checkStorageID(v) != nil {
			return nil, fmt.Errorf("source host %q is neither a domain suffix (.stor.example.com) nor a host or host:port", e)
		}
		h.exact[v] = true
	}
	return h, nil
}

// allows reports whether the agent may download from the storage id. A
// suffix only matches ids without a port: sharks serve objects on port 80,
// and a manager naming another port names something other than a shark.
func (h *allowList) allows(id string) bool {
	if h == nil {
		return true
	}
	id = strings.ToLower(id)
	if h.exact[id] {
		return true
	}
	if strings.Contains(id, ":") {
		return false
	}
	for _, s := range h.suffixes {
		if len(id) > len(s) && strings.HasSuffix(id, s) {
			return true
		}
	}
	return false
}

func notAllowedError(id string) error {
	return fmt.Errorf("source %q is not one of this agent's allowed sources (Config.AllowSources, --allow-sources)", truncate(id, 80))
}

// relPath is where t's object lives, relative to the Manta root, and the
// path the source serves it at:
//
//	v1: {owner}/{object_id}
//	v2: v2/{owner}/{bucket_id}/{object_id[0:2]}/{object_id},{object_name_hash}
func relPath(t rebalancer.Task) string {
	if t.IsV2() {
		return "v2/" + t.Owner + "/" + t.BucketID + "/" + t.ObjectID[:2] + "/" + t.ObjectID + "," + t.ObjectNameHash
	}
	return t.Owner + "/" + t.ObjectID
}

// destPath returns the final path of t's object under root. t must have
// passed checkTask; the containment check is a second line of defence.
func destPath(root string, t rebalancer.Task) (string, error) {
	rel := relPath(t)
	p := filepath.Join(root, filepath.FromSlash(rel))
	r, err := filepath.Rel(root, p)
	if err != nil || r != filepath.FromSlash(rel) || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("object path %q escapes the root %s", rel, root)
	}
	return p, nil
}

// sourceURL returns the URL of t's object on its source shark.
func sourceURL(t rebalancer.Task) string {
	return "http://" + t.Source.MantaStorageID + "/" + relPath(t)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
