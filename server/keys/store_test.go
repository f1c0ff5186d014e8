package keys

import (
	"context"
	"sync"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/memory"
)

// testStore is a storage/memory key store with instruments: it counts
// successful writes so tests can tell how many rotations happened, can be
// made to fail, and can have its backend swapped (a restored database).
type testStore struct {
	mu     sync.Mutex
	inner  storage.KeyStore
	writes int
	fail   error // when set, every call returns it
}

var _ storage.KeyStore = (*testStore)(nil)

func newStore() *testStore { return &testStore{inner: memory.New()} }

func (s *testStore) backend() (storage.KeyStore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inner, s.fail
}

func (s *testStore) GetKeySet(ctx context.Context) (storage.KeySet, error) {
	b, err := s.backend()
	if err != nil {
		return storage.KeySet{}, err
	}
	return b.GetKeySet(ctx)
}

func (s *testStore) KeySetVersion(ctx context.Context) (int64, error) {
	b, err := s.backend()
	if err != nil {
		return 0, err
	}
	return b.KeySetVersion(ctx)
}

func (s *testStore) ReplaceKeySet(ctx context.Context, expect int64, keys []storage.SigningKey) (int64, error) {
	b, err := s.backend()
	if err != nil {
		return 0, err
	}
	v, err := b.ReplaceKeySet(ctx, expect, keys)
	if err == nil {
		s.mu.Lock()
		s.writes++
		s.mu.Unlock()
	}
	return v, err
}

func (s *testStore) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func (s *testStore) setFailure(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *testStore) swap(inner storage.KeyStore) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inner = inner
}
