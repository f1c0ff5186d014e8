package redis_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/storage/redis"
)

func TestParseURLPlain(t *testing.T) {
	o, f, c, err := redis.ParseURLOptions("redis://user:p%40ss@cache.example:6380/3?dial_timeout=2s")
	if err != nil || f != nil || c != nil {
		t.Fatalf("ParseURL: %v %v %v", err, f, c)
	}
	if o.Addr != "cache.example:6380" || o.DB != 3 || o.Username != "user" || o.Password != "p@ss" || o.TLSConfig != nil || o.DialTimeout.String() != "2s" {
		t.Errorf("got addr %s db %d user %q password %q tls %v dial %s", o.Addr, o.DB, o.Username, o.Password, o.TLSConfig != nil, o.DialTimeout)
	}

	o, _, _, err = redis.ParseURLOptions("rediss://:secret@cache.example")
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "cache.example:6379" || o.DB != 0 || o.Password != "secret" || o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example" {
		t.Errorf("rediss: got addr %s db %d password %q tls %+v", o.Addr, o.DB, o.Password, o.TLSConfig)
	}

	o, _, _, err = redis.ParseURLOptions("unix:///run/redis.sock?db=2")
	if err != nil {
		t.Fatal(err)
	}
	if o.Network != "unix" || o.Addr != "/run/redis.sock" || o.DB != 2 {
		t.Errorf("unix: got %s %s db %d", o.Network, o.Addr, o.DB)
	}
}

func TestParseURLSentinel(t *testing.T) {
	_, f, _, err := redis.ParseURLOptions("redis+sentinel://:masterpw@s1.example,s2.example:26380,[::1]/mymaster/4?sentinel_password=sentpw&read_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	wantAddrs := []string{"s1.example:26379", "s2.example:26380", "[::1]:26379"}
	if !slices.Equal(f.SentinelAddrs, wantAddrs) {
		t.Errorf("sentinel addrs = %v, want %v", f.SentinelAddrs, wantAddrs)
	}
	if f.MasterName != "mymaster" || f.DB != 4 || f.Password != "masterpw" || f.SentinelPassword != "sentpw" || f.TLSConfig != nil || f.ReadTimeout.String() != "1s" {
		t.Errorf("got master %q db %d password %q sentinel password %q tls %v read %s",
			f.MasterName, f.DB, f.Password, f.SentinelPassword, f.TLSConfig != nil, f.ReadTimeout)
	}

	_, f, _, err = redis.ParseURLOptions("rediss+sentinel://s1.example/primary")
	if err != nil {
		t.Fatal(err)
	}
	if f.MasterName != "primary" || f.DB != 0 || f.Password != "" || f.TLSConfig == nil || !slices.Equal(f.SentinelAddrs, []string{"s1.example:26379"}) {
		t.Errorf("rediss+sentinel: got %+v", f)
	}
}

func TestParseURLCluster(t *testing.T) {
	_, _, c, err := redis.ParseURLOptions("redis+cluster://u:pw@n1.example:7000,n2.example:7001,n3.example?max_redirects=5")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"n1.example:7000", "n2.example:7001", "n3.example:6379"}
	if !slices.Equal(c.Addrs, want) || c.Username != "u" || c.Password != "pw" || c.MaxRedirects != 5 || c.TLSConfig != nil {
		t.Errorf("got addrs %v user %q password %q redirects %d tls %v", c.Addrs, c.Username, c.Password, c.MaxRedirects, c.TLSConfig != nil)
	}
	_, _, c, err = redis.ParseURLOptions("rediss+cluster://n1.example:7000/")
	if err != nil {
		t.Fatal(err)
	}
	if c.TLSConfig == nil || !slices.Equal(c.Addrs, []string{"n1.example:7000"}) {
		t.Errorf("rediss+cluster: got %+v", c)
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, raw := range []string{
		"",
		"cache.example:6379",
		"http://cache.example",
		"redis://cache.example/notanumber",
		"redis+sentinel://s1.example",                   // no master name
		"redis+sentinel://s1.example/m/x",               // bad db
		"redis+sentinel://s1.example/m/1/2",             // too long a path
		"redis+sentinel://s1.example,,s2.example/m",     // empty host
		"redis+sentinel://s1.example:99999/m",           // bad port
		"redis+cluster://n1.example/1",                  // no db in a cluster
		"redis+cluster://n1.example?no_such_option=1",   // unknown option
		"redis://:hunter2@cache.example:6379/0?bogus=1", // unknown option, password must not leak
		"redis://:hunter2@[cache.example/0",             // malformed, password must not leak
	} {
		_, _, _, err := redis.ParseURLOptions(raw)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q) error quotes the password: %v", raw, err)
		}
	}
}
