package keys

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// testStore is a KeyStore kept in memory with the contract's semantics
// (compare-and-swap on the version, microsecond UTC times, copies in and
// out). It also counts successful writes so tests can tell how many
// rotations happened.
type testStore struct {
	mu     sync.Mutex
	set    storage.KeySet
	writes int
	fail   error // when set, every call returns it
}

var _ storage.KeyStore = (*testStore)(nil)

func (s *testStore) GetKeySet(context.Context) (storage.KeySet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return storage.KeySet{}, s.fail
	}
	return storage.KeySet{Version: s.set.Version, Keys: copyKeys(s.set.Keys)}, nil
}

func (s *testStore) KeySetVersion(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	return s.set.Version, nil
}

func (s *testStore) ReplaceKeySet(_ context.Context, expect int64, keys []storage.SigningKey) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	if expect != s.set.Version {
		return 0, fmt.Errorf("replacing key set: %w", storage.ErrConflict)
	}
	s.set = storage.KeySet{Version: expect + 1, Keys: copyKeys(keys)}
	s.writes++
	return s.set.Version, nil
}

func (s *testStore) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func copyKeys(in []storage.SigningKey) []storage.SigningKey {
	out := slices.Clone(in)
	for i := range out {
		out[i].PrivateKey = bytes.Clone(out[i].PrivateKey)
		out[i].PublicJWK = bytes.Clone(out[i].PublicJWK)
		for _, t := range []*time.Time{&out[i].CreatedAt, &out[i].ActivateAt, &out[i].RetiredAt, &out[i].DeleteAt} {
			*t = t.UTC().Truncate(time.Microsecond)
		}
	}
	return out
}
