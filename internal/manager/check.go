package manager

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/TritonDataCenter/rebalancer/mdapi"
	"github.com/TritonDataCenter/rebalancer/moray"
	"github.com/TritonDataCenter/rebalancer/sharkspotter"
	"github.com/TritonDataCenter/rebalancer/storinfo"
)

// CheckConfig parses the text of a configuration file as the manager does
// and returns the configuration it would run with (defaults filled in) and
// every problem: each invalid value, then each unknown key. cfg is nil
// when the text is not a JSON object of the configuration's shape; then
// the one problem says why. rebalancer-manager check-config prints them.
func CheckConfig(b []byte) (cfg *Config, problems []string) {
	cfg, err := decodeConfig(b)
	if err != nil {
		return nil, []string{err.Error()}
	}
	for _, err := range cfg.problems() {
		problems = append(problems, strings.Split(err.Error(), "\n")...)
	}
	for _, u := range cfg.unknown {
		problems = append(problems, u.String())
	}
	return cfg, problems
}

// Setting is one value of the configuration in effect.
type Setting struct {
	// Key is where the value is in the file: "options.max_sharks",
	// "shard_databases.2".
	Key string
	// Value is the value in effect, as JSON, with tokens and passwords
	// redacted.
	Value string
	// Default is the value of a file that does not set the key, as JSON;
	// "" for domain_name and shards, which have none.
	Default string
}

// IsDefault reports whether the value is the key's default.
func (s Setting) IsDefault() bool { return s.Value == s.Default }

// Settings lists every value of the configuration, in the order of the
// file's keys, with the defaults that other keys decide filled in: the
// storinfo URL, the job store and its mark, the storinfo poll interval,
// the connection string of each shard's PostgreSQL copy (used when
// direct_db is set) and the Moray of each shard (used otherwise, and for
// metadata updates).
func (c *Config) Settings() []Setting {
	defaults := defaultConfig()
	defaults.DomainName, defaults.Shards = c.DomainName, c.Shards
	// mdapi_direct_db follows direct_db; the buckets shards' addresses and
	// copies follow mdapi.shards.
	defaults.DirectDB, defaults.Mdapi.Shards = c.DirectDB, c.Mdapi.Shards
	cur := flatten(reflect.ValueOf(c.filled()).Elem(), "")
	def := map[string]string{}
	for _, s := range flatten(reflect.ValueOf(defaults.filled()).Elem(), "") {
		def[s.Key] = s.Value
	}
	for i, s := range cur {
		switch {
		case s.Key == "domain_name" || s.Key == "shards":
		case def[s.Key] != "":
			cur[i].Default = def[s.Key]
		case strings.HasPrefix(s.Key, "shard_databases.") || strings.HasPrefix(s.Key, "moray_endpoints.") ||
			strings.HasPrefix(s.Key, "mdapi_databases.") || strings.HasPrefix(s.Key, "mdapi_endpoints."):
			// An override of a shard that is not listed: not used.
			cur[i].Default = `""`
		}
	}
	return cur
}

// filled returns a copy of c with the defaults that depend on other keys
// written out, and its secrets redacted.
func (c *Config) filled() *Config {
	f := *c
	if f.StorinfoURL == "" && f.DomainName != "" {
		f.StorinfoURL = "http://storinfo." + f.DomainName
	}
	if f.Database == "" {
		f.Database = DefaultDatabase
	}
	f.StoreMark = c.markFile(f.Database)
	if f.StorinfoPollInterval == 0 {
		f.StorinfoPollInterval = int(storinfo.DefaultInterval.Milliseconds())
	}
	if f.MinAvailMB == 0 {
		f.MinAvailMB = storinfo.DefaultMinAvailMB
	}
	for _, l := range []*[]string{&f.BlocklistSharks, &f.BlocklistDatacenters, &f.Options.ExcludeKeyPrefixes} {
		if *l == nil {
			*l = []string{}
		}
	}
	if f.Mdapi.Shards == nil {
		f.Mdapi.Shards = []ShardHost{}
	}
	f.MorayEndpoints = maps.Clone(c.MorayEndpoints)
	if f.MorayEndpoints == nil {
		f.MorayEndpoints = map[string]string{}
	}
	f.ShardDatabases = map[string]string{}
	for k, v := range c.ShardDatabases {
		if d, err := withSSLModeDefault(v); err == nil {
			v = d
		}
		f.ShardDatabases[k] = redactDSN(v)
	}
	for _, n := range c.ShardNumbers() {
		k := strconv.Itoa(n)
		if _, ok := f.ShardDatabases[k]; !ok {
			f.ShardDatabases[k] = sharkspotter.DefaultDSN(n, c.DomainName)
		}
		if _, ok := f.MorayEndpoints[k]; !ok {
			f.MorayEndpoints[k] = "(DNS) " + moray.ShardHost(n, c.DomainName)
		}
	}
	c.fillBuckets(&f)
	f.Database = redactDSN(f.Database)
	f.ImportLegacyFrom = redactDSN(f.ImportLegacyFrom)
	f.AgentToken, f.APIToken = redactToken(f.AgentToken), redactToken(f.APIToken)
	return &f
}

// fillBuckets writes out, in f, the buckets-mdapi settings that depend on
// other keys: the discovery mode, and each buckets shard's PostgreSQL copy
// and buckets-mdapi address.
func (c *Config) fillBuckets(f *Config) {
	direct := c.BucketsDirect()
	f.MdapiDirectDB = &direct
	f.MdapiEndpoints = maps.Clone(c.MdapiEndpoints)
	if f.MdapiEndpoints == nil {
		f.MdapiEndpoints = map[string]string{}
	}
	f.MdapiDatabases = map[string]string{}
	for k, v := range c.MdapiDatabases {
		if d, err := withSSLModeDefault(v); err == nil {
			v = d
		}
		f.MdapiDatabases[k] = redactDSN(v)
	}
	for _, s := range c.Mdapi.Shards {
		n, err := mdapi.ShardNumber(s.Host)
		if err != nil {
			continue
		}
		k := strconv.Itoa(n)
		if _, ok := f.MdapiDatabases[k]; !ok {
			f.MdapiDatabases[k] = sharkspotter.DefaultBucketsDSN(n, c.DomainName)
		}
		if _, ok := f.MdapiEndpoints[k]; !ok {
			f.MdapiEndpoints[k] = "(DNS) _buckets-mdapi._tcp." + s.Host + ", else " + s.Host + ":2030"
		}
	}
}

var passwordRE = regexp.MustCompile(`(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// redactDSN hides the password of a PostgreSQL connection string.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Redacted()
	}
	return passwordRE.ReplaceAllString(dsn, "${1}password=xxxxx")
}

func redactToken(t string) string {
	if t == "" {
		return ""
	}
	return fmt.Sprintf("(set, %d characters)", len(t))
}

// flatten lists the JSON fields of a struct value, recursing into structs
// and maps, in field order (map keys in numeric, else lexical, order).
func flatten(v reflect.Value, path string) []Setting {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return []Setting{{Key: path, Value: "null"}}
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		names, fields := jsonFields(v.Type())
		var out []Setting
		for _, n := range names {
			out = append(out, flatten(v.FieldByIndex(fields[n].Index), join(path, n))...)
		}
		return out
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return compareKeys(a.String(), b.String()) })
		var out []Setting
		for _, k := range keys {
			out = append(out, flatten(v.MapIndex(k), join(path, k.String()))...)
		}
		return out
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		b = []byte(strconv.Quote(err.Error()))
	}
	return []Setting{{Key: path, Value: string(b)}}
}

// compareKeys orders shard numbers as numbers, other keys as text.
func compareKeys(a, b string) int {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return strings.Compare(a, b)
}

// settingsLog logs the settings in effect, only when the line is written.
type settingsLog struct{ c *Config }

func (s settingsLog) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, st := range s.c.Settings() {
		attrs = append(attrs, slog.Any(st.Key, json.RawMessage(st.Value)))
	}
	return slog.GroupValue(attrs...)
}

func settingsAttr(c *Config) slog.LogValuer { return settingsLog{c} }
