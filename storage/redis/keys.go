package redis

import (
	"fmt"
	"strings"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Key layout. Every key starts with the configured prefix; every key of one
// grant carries the hash tag {<grant>} so that the scripts touching a grant's
// records and index run on one Redis Cluster slot:
//
//	<prefix>sess:<session id>               session (string, codec)
//	<prefix>subj:<subject>                  sorted set: session ids scored by expiry (ms)
//	<prefix>req:{<grant>}:<kind>:<sig>      request record (hash: d=codec, a=active, x=expiry µs)
//	<prefix>grant:{<grant>}                 sorted set: "<kind>:<sig>" members scored by expiry (ms)
//	<prefix>sig:<kind>:<sig>                grant id of the record, for lookups by signature
//	<prefix>gsub:<subject>                  sorted set: grant ids with a record of the subject, scored by expiry (ms)
//	<prefix>gcli:<client id>                sorted set: grant ids with a record of the client, scored by expiry (ms)
//	<prefix>once:<id>                       replay cache entry
//	<prefix>thr:<key>                       throttle counter
//
// The grant id is escaped inside the tag (%, { and } percent-encoded) so that
// the tag is exactly the grant whatever characters the id holds.
type keys struct{ prefix string }

func (k keys) session(id string) string       { return k.prefix + "sess:" + id }
func (k keys) subject(sub string) string      { return k.prefix + "subj:" + sub }
func (k keys) once(id string) string          { return k.prefix + "once:" + id }
func (k keys) throttle(key string) string     { return k.prefix + "thr:" + key }
func (k keys) grantIndex(grant string) string { return k.prefix + "grant:" + tag(grant) }

// The owner indexes live outside any grant's hash tag: revocation by owner
// reads one and then runs the grant script once per grant.
func (k keys) subjectGrants(sub string) string   { return k.prefix + "gsub:" + sub }
func (k keys) clientGrants(client string) string { return k.prefix + "gcli:" + client }

// requestBase is the common start of every record key of a grant; the grant
// script appends an index member to it to find a record.
func (k keys) requestBase(grant string) string { return k.prefix + "req:" + tag(grant) + ":" }

func (k keys) request(grant string, kind storage.RequestKind, sig string) string {
	return k.requestBase(grant) + member(kind, sig)
}

func (k keys) pointer(kind storage.RequestKind, sig string) string {
	return k.prefix + "sig:" + member(kind, sig)
}

// member names a record inside its grant's index.
func member(kind storage.RequestKind, sig string) string { return string(kind) + ":" + sig }

var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func tag(grant string) string { return "{" + tagEscaper.Replace(grant) + "}" }

// checkPrefix refuses a prefix that would capture the hash tag of grant keys.
func checkPrefix(p string) error {
	if strings.ContainsAny(p, "{}") {
		return fmt.Errorf("redis key prefix %q: must not contain { or } (they would break Redis Cluster hash tags)", p)
	}
	return nil
}

func validKind(kind storage.RequestKind) error {
	for _, k := range storage.Kinds {
		if k == kind {
			return nil
		}
	}
	return fmt.Errorf("unknown request kind %q", kind)
}
