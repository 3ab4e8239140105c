package release

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// SMFService is what the release checks and the tests read from an SMF
// manifest.
type SMFService struct {
	Name      string // e.g. manta/application/rebalancer
	Instances []string
	// Methods maps an exec_method's name (start, stop, refresh) to its
	// exec string.
	Methods map[string]string
	// User and Privileges are the service-wide method_credential's.
	User, Privileges string
	Dependencies     []string // the FMRIs depended on
}

// StartCommand splits the start method into the program and its arguments,
// without the trailing "&" that backgrounds it.
func (s *SMFService) StartCommand() []string {
	f := strings.Fields(s.Methods["start"])
	if n := len(f); n > 0 && f[n-1] == "&" {
		f = f[:n-1]
	}
	return f
}

// Flag returns the value of --name (as "--name VALUE" or "--name=VALUE")
// on the start command line, and whether it is there.
func (s *SMFService) Flag(name string) (string, bool) {
	args := s.StartCommand()
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// The element order that service_bundle.dtd.1 (illumos
// usr/src/cmd/svc/dtd/service_bundle.dtd.1) requires of the children of
// the elements these manifests use; svccfg import refuses a manifest that
// breaks it. once marks the elements allowed at most once.
var smfChildren = map[string]struct {
	order []string
	once  map[string]bool
}{
	"service_bundle": {[]string{"service"}, nil},
	"service": {
		[]string{"create_default_instance", "single_instance", "restarter", "dependency", "dependent",
			"method_context", "exec_method", "property_group", "instance", "stability", "template"},
		set("create_default_instance", "single_instance", "restarter", "method_context", "stability", "template"),
	},
	"dependency":     {[]string{"service_fmri", "stability", "propval|property"}, set("stability")},
	"method_context": {[]string{"method_profile|method_credential", "method_environment"}, set("method_profile|method_credential", "method_environment")},
	"exec_method":    {[]string{"method_context", "stability", "propval|property"}, set("method_context", "stability")},
	"instance": {
		[]string{"restarter", "dependency", "dependent", "method_context", "exec_method", "property_group", "template"},
		set("restarter", "method_context", "template"),
	},
	"template":           {[]string{"common_name", "description", "documentation", "pg_pattern"}, set("common_name", "description", "documentation")},
	"common_name":        {[]string{"loctext"}, nil},
	"method_environment": {[]string{"envvar"}, nil},
}

// smfRequired are the attributes the DTD requires.
var smfRequired = map[string][]string{
	"service_bundle":    {"type", "name"},
	"service":           {"name", "version", "type"},
	"dependency":        {"name", "grouping", "restart_on", "type"},
	"service_fmri":      {"value"},
	"exec_method":       {"type", "name", "exec", "timeout_seconds"},
	"method_credential": {"user"},
	"instance":          {"name", "enabled"},
	"stability":         {"value"},
	"envvar":            {"name", "value"},
	"loctext":           {"xml:lang"},
}

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// CheckSMF parses an SMF manifest holding one service and checks that it
// is well-formed XML, that the elements it uses come in the order the DTD
// requires with the attributes it requires, and that the service has a
// start and a stop method, an instance and a template.
func CheckSMF(data []byte) (*SMFService, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	svc := &SMFService{Methods: map[string]string{}}
	type open struct {
		name  string
		pos   int // index in the parent's order of the last child seen
		count map[string]int
	}
	var stack []*open
	var errs []error
	root, hasTemplate := "", false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			attrs := map[string]string{}
			for _, a := range t.Attr {
				k := a.Name.Local
				if a.Name.Space == "xml" || a.Name.Space == "http://www.w3.org/XML/1998/namespace" {
					k = "xml:" + k
				}
				attrs[k] = a.Value
			}
			for _, r := range smfRequired[name] {
				if attrs[r] == "" {
					errs = append(errs, fmt.Errorf("<%s> lacks the %s attribute", name, r))
				}
			}
			if len(stack) == 0 {
				root = name
			} else {
				parent := stack[len(stack)-1]
				if rule, ok := smfChildren[parent.name]; ok {
					i, group := indexOf(rule.order, name)
					switch {
					case i < 0:
						errs = append(errs, fmt.Errorf("<%s> may not hold <%s>", parent.name, name))
					case i < parent.pos:
						errs = append(errs, fmt.Errorf("<%s> comes too late in <%s>: the order is %s", name, parent.name, strings.Join(rule.order, ", ")))
					default:
						parent.pos = i
						parent.count[group]++
						if rule.once[group] && parent.count[group] > 1 {
							errs = append(errs, fmt.Errorf("<%s> holds more than one <%s>", parent.name, name))
						}
					}
				}
			}
			depth := len(stack)
			switch {
			case name == "service" && depth == 1:
				if svc.Name != "" {
					errs = append(errs, errors.New("more than one <service>"))
				}
				svc.Name = attrs["name"]
			case name == "instance":
				svc.Instances = append(svc.Instances, attrs["name"])
			case name == "exec_method":
				svc.Methods[attrs["name"]] = attrs["exec"]
			case name == "method_credential" && depth == 3 && stack[1].name == "service":
				svc.User, svc.Privileges = attrs["user"], attrs["privileges"]
			case name == "service_fmri" && stack[depth-1].name == "dependency":
				svc.Dependencies = append(svc.Dependencies, attrs["value"])
			case name == "template" && depth == 2:
				hasTemplate = true
			}
			stack = append(stack, &open{name: name, count: map[string]int{}})
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root != "service_bundle" {
		errs = append(errs, fmt.Errorf("the root element is <%s>, not <service_bundle>", root))
	}
	if svc.Name == "" {
		errs = append(errs, errors.New("no <service>"))
	}
	for _, m := range []string{"start", "stop"} {
		if svc.Methods[m] == "" {
			errs = append(errs, fmt.Errorf("no %s method", m))
		}
	}
	if !hasTemplate {
		errs = append(errs, errors.New("no <template>: a manifest needs one"))
	}
	if len(svc.Instances) == 0 {
		errs = append(errs, errors.New("no <instance>"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return svc, nil
}

// indexOf finds name in an order whose items may be alternatives ("a|b"),
// returning the index and the item.
func indexOf(order []string, name string) (int, string) {
	for i, item := range order {
		for _, alt := range strings.Split(item, "|") {
			if alt == name {
				return i, item
			}
		}
	}
	return -1, ""
}
