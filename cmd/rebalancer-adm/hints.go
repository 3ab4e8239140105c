package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// hint says what to do about err, a failed command's error, or "" when
// its message says it already. manager is the URL the command talked to
// and args its command line, to say where that URL came from.
func hint(err error, manager string, args []string) string {
	var (
		ae  *jobapi.Error
		dns *net.DNSError
		op  *net.OpError
	)
	switch {
	case errors.As(err, &ae):
		switch {
		case ae.Code == http.StatusNotFound && strings.Contains(ae.Body, "Could not find job"):
			return "rebalancer-adm job list shows the jobs this manager has"
		case ae.Code == http.StatusNotFound && strings.HasPrefix(ae.Body, "No route"):
			return "this manager does not have that route: is it an older version, or is " + manager + " another service?"
		case ae.Code == http.StatusNotFound && ae.Body == "":
			return "the reply has no message: is " + manager + " a legacy manager, or another service?"
		}
		return ""
	case errors.Is(err, jobapi.ErrMetricsPort):
		return fmt.Sprintf("point --manager (now %s, %s) at the manager's job API", manager, managerSource(args))
	case errors.As(err, &dns), errors.As(err, &op) && (op.Op == "dial" || op.Op == "read"):
		return fmt.Sprintf("is the manager running, its job API listening at %s? That URL is %s; "+
			"set --manager or $REBALANCER_MANAGER to the manager's job API (listen_port, 80 by default)", manager, managerSource(args))
	}
	return ""
}

// managerSource says where --manager's value came from.
func managerSource(args []string) string {
	if slices.ContainsFunc(args, func(a string) bool { return a == "--manager" || strings.HasPrefix(a, "--manager=") }) {
		return "from --manager"
	}
	if os.Getenv("REBALANCER_MANAGER") != "" {
		return "from $REBALANCER_MANAGER"
	}
	return "the default (http://localhost, as the legacy client)"
}
