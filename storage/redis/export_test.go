package redis

import (
	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// Test-only access to internals.

func ParseURLOptions(raw string) (*goredis.Options, *goredis.FailoverOptions, *goredis.ClusterOptions, error) {
	e, err := parseURL(raw)
	return e.simple, e.failover, e.cluster, err
}

func (s *Store) Client() goredis.UniversalClient { return s.client }

func EncodeSession(sess storage.Session) ([]byte, error) { return encodeSession(sess) }

func EncodeRequest(r storage.Request) ([]byte, error) { return encodeRequest(r) }

func (s *Store) SessionKey(id string) string { return s.keys.session(id) }

func (s *Store) RequestKey(r storage.Request) string {
	return s.keys.request(r.RequestID, r.Kind, r.Signature)
}

func (s *Store) PointerKey(kind storage.RequestKind, sig string) string {
	return s.keys.pointer(kind, sig)
}

func (s *Store) GrantIndexKey(grant string) string { return s.keys.grantIndex(grant) }

func (s *Store) SubjectGrantsKey(sub string) string { return s.keys.subjectGrants(sub) }

func (s *Store) ClientGrantsKey(client string) string { return s.keys.clientGrants(client) }
