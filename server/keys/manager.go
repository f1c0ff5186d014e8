// Package keys manages the JWS signing keys: their creation, rotation across
// replicas and the JWKS document that publishes them.
//
// Every key goes through next (published, not signing) -> active (signing) ->
// retired (published, not signing) -> deleted. A new key is published for
// PublishAhead before it signs and an old one stays published for RetireAfter
// after it stops, so a relying party that caches the JWKS always knows the
// key of a token it is given (OIDC Core §10.1.1).
//
// The set lives in a storage.KeyStore shared by all replicas. Every change is
// one compare-and-swap on the set's version, so concurrent replicas never
// both rotate; each replica polls the version and reloads on change.
package keys

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-idp/gatehouse/server/secrets"
	"github.com/gatehouse-idp/gatehouse/storage"
)

// casAttempts bounds the read-modify-CAS loop; each lost round means another
// replica wrote, so a handful is plenty.
const casAttempts = 8

// ErrRotationNotReady is returned by Rotate without force while the next
// keys have been published for less than PublishAhead.
var ErrRotationNotReady = errors.New("next keys are published too recently to sign")

// KeyInfo describes one key of the set, without key material.
type KeyInfo struct {
	KID        string
	Algorithm  string
	State      storage.KeyState
	CreatedAt  time.Time
	ActivateAt time.Time // next: when it may sign; active: when it started
	RetiredAt  time.Time // retired: when it stopped signing
	DeleteAt   time.Time // retired: when it leaves the set
}

// Manager holds the key set in memory and keeps it in step with storage.
// It is safe for concurrent use.
type Manager struct {
	store storage.KeyStore
	ring  *secrets.Keyring
	cfg   Config
	log   *slog.Logger

	snap atomic.Pointer[snapshot]
	// writeMu serialises this replica's own read-modify-CAS rounds; other
	// replicas are kept out by the CAS.
	writeMu sync.Mutex
}

// snapshot is one loaded version of the set. It is immutable once built.
type snapshot struct {
	set     storage.KeySet
	signers map[string]signer // by algorithm: the active key
	all     map[string]crypto.Signer
	jwks    jose.JSONWebKeySet
	body    []byte // the encoded JWKS
	etag    string
	// The JWKS response's per-snapshot header values, built once (jwks.go).
	etagHeader, lengthHeader []string
}

type signer struct {
	kid string
	key crypto.Signer
}

// New loads the key set and makes sure every configured algorithm has an
// active and a next key. The very first key of an algorithm signs at once.
func New(ctx context.Context, store storage.KeyStore, ring *secrets.Keyring, cfg Config) (*Manager, error) {
	if store == nil || ring == nil {
		return nil, errors.New("keys: store and keyring are required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Manager{store: store, ring: ring, cfg: cfg, log: cfg.Logger}
	if err := m.maintain(ctx); err != nil {
		return nil, fmt.Errorf("keys: initialising key set: %w", err)
	}
	return m, nil
}

// Algorithms returns the configured algorithms, in configured order.
func (m *Manager) Algorithms() []string { return slices.Clone(m.cfg.Algorithms) }

// SigningKey returns the active key of alg from memory. The key is an
// *rsa.PrivateKey (RS256, PS256), *ecdsa.PrivateKey (ES256) or
// ed25519.PrivateKey (EdDSA).
func (m *Manager) SigningKey(_ context.Context, alg string) (string, crypto.Signer, error) {
	s, ok := m.snap.Load().signers[alg]
	if !ok {
		if !slices.Contains(m.cfg.Algorithms, alg) {
			return "", nil, fmt.Errorf("keys: algorithm %q is not configured", alg)
		}
		return "", nil, fmt.Errorf("keys: no active %s key", alg)
	}
	return s.kid, s.key, nil
}

// Signer returns a go-jose signer for the active key of alg; the JWS header
// carries its kid.
func (m *Manager) Signer(alg string) (jose.Signer, error) {
	kid, key, err := m.SigningKey(context.Background(), alg)
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(alg),
		Key:       jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg},
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("keys: creating %s signer: %w", alg, err)
	}
	return s, nil
}

// PublicKeys returns every published key (next, active, retired), public
// parts only.
func (m *Manager) PublicKeys() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: slices.Clone(m.snap.Load().jwks.Keys)}
}

// List describes every key of the set, for the CLI.
func (m *Manager) List() []KeyInfo {
	keys := m.snap.Load().set.Keys
	out := make([]KeyInfo, len(keys))
	for i, k := range keys {
		out[i] = KeyInfo{
			KID: k.ID, Algorithm: k.Algorithm, State: k.State, CreatedAt: k.CreatedAt,
			ActivateAt: k.ActivateAt, RetiredAt: k.RetiredAt, DeleteAt: k.DeleteAt,
		}
	}
	return out
}

// Version returns the version of the set in memory.
func (m *Manager) Version() int64 { return m.snap.Load().set.Version }

// Reload reads the set from storage and serves it from now on.
func (m *Manager) Reload(ctx context.Context) error {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	set, err := m.store.GetKeySet(ctx)
	if err != nil {
		return fmt.Errorf("keys: reading key set: %w", err)
	}
	return m.install(set)
}

// Rotate promotes, for every configured algorithm, the next key to active,
// retires the active one, creates a new next key and drops retired keys past
// their deletion time, in one compare-and-swap. Unless force, it refuses
// while a next key has been published for less than PublishAhead, since a
// relying party might not know it yet (OIDC Core §10.1.1). When another
// replica rotates first, Rotate adopts its result and returns nil.
func (m *Manager) Rotate(ctx context.Context, force bool) error {
	set, err := m.store.GetKeySet(ctx)
	if err != nil {
		return fmt.Errorf("keys: reading key set: %w", err)
	}
	var seen map[string]string // alg -> active kid at the first read
	err = m.update(ctx, set, func(set storage.KeySet, now time.Time, gen *keygen) ([]storage.SigningKey, bool, error) {
		actives := activeKIDs(set.Keys)
		if seen == nil {
			seen = actives
		} else {
			for _, alg := range m.cfg.Algorithms {
				if actives[alg] != seen[alg] {
					return nil, false, nil // another replica rotated meanwhile
				}
			}
		}
		keys := prune(set.Keys, now)
		if !force {
			if at, ready := m.readyAt(keys, m.cfg.Algorithms, now); !ready {
				return nil, false, fmt.Errorf("keys: %w; rotation possible from %s (or force it)", ErrRotationNotReady, at.Format(time.RFC3339))
			}
		}
		keys, err := m.rotate(keys, m.cfg.Algorithms, now, gen)
		if err != nil {
			return nil, false, err
		}
		keys, err = m.ensure(keys, now, gen)
		return keys, true, err
	})
	if err != nil {
		return err
	}
	return nil
}

// Run keeps the set current until ctx ends, then returns nil. Every
// PollInterval it reads the stored version and reloads on change, so a
// rotation anywhere is served here within PollInterval; and it rotates keys
// that have signed for RotationPeriod, drops expired retired keys and makes
// up missing ones. Storage errors are logged and retried at the next tick.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := m.poll(ctx); err != nil && ctx.Err() == nil {
			m.log.ErrorContext(ctx, "key set poll", "err", err)
		}
	}
}

func (m *Manager) poll(ctx context.Context) error {
	v, err := m.store.KeySetVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading key set version: %w", err)
	}
	if v != m.Version() {
		if err := m.Reload(ctx); err != nil {
			return err
		}
	}
	if m.due(m.snap.Load().set.Keys, m.now()) {
		return m.maintain(ctx)
	}
	return nil
}

// due reports whether maintain would change the set; it only reads memory,
// so the poll costs one version read when nothing is due.
func (m *Manager) due(keys []storage.SigningKey, now time.Time) bool {
	if len(prune(keys, now)) != len(keys) {
		return true
	}
	if len(m.rotationDue(keys, now)) > 0 {
		return true
	}
	for _, alg := range m.cfg.Algorithms {
		if find(keys, alg, storage.KeyActive) < 0 || find(keys, alg, storage.KeyNext) < 0 {
			return true
		}
	}
	return false
}

// maintain brings the stored set to what the config asks for at this time:
// expired retired keys dropped, keys due for rotation rotated, missing active
// and next keys created.
func (m *Manager) maintain(ctx context.Context) error {
	set, err := m.store.GetKeySet(ctx)
	if err != nil {
		return fmt.Errorf("reading key set: %w", err)
	}
	return m.update(ctx, set, func(set storage.KeySet, now time.Time, gen *keygen) ([]storage.SigningKey, bool, error) {
		if !m.due(set.Keys, now) {
			return nil, false, nil
		}
		keys := prune(set.Keys, now)
		keys, err := m.rotate(keys, m.rotationDue(keys, now), now, gen)
		if err != nil {
			return nil, false, err
		}
		keys, err = m.ensure(keys, now, gen)
		return keys, true, err
	})
}

// mutation computes a new key list from a set; changed=false means nothing
// to write.
type mutation func(set storage.KeySet, now time.Time, gen *keygen) (keys []storage.SigningKey, changed bool, err error)

// update runs the read-modify-CAS loop: apply mutate to set and write the
// result if the stored version is unchanged; on a conflict, read again and
// start over. The set written (or read last) becomes the served snapshot.
func (m *Manager) update(ctx context.Context, set storage.KeySet, mutate mutation) error {
	m.writeMu.Lock()
	defer m.writeMu.Unlock()
	gen := &keygen{bits: m.cfg.RSABits, ring: m.ring}
	for range casAttempts {
		gen.rewind()
		keys, changed, err := mutate(set, m.now(), gen)
		if err != nil {
			// Serve what was read even though we do not change it.
			if ierr := m.install(set); ierr != nil {
				return errors.Join(err, ierr)
			}
			return err
		}
		if !changed {
			return m.install(set)
		}
		sortKeys(keys, m.cfg.Algorithms)
		v, err := m.store.ReplaceKeySet(ctx, set.Version, keys)
		if errors.Is(err, storage.ErrConflict) {
			m.log.InfoContext(ctx, "key set changed by another replica, retrying", "version", set.Version)
			if set, err = m.store.GetKeySet(ctx); err != nil {
				return fmt.Errorf("re-reading key set: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("writing key set: %w", err)
		}
		m.logChanges(ctx, set.Keys, keys, v)
		// Read back so the snapshot holds the times exactly as the backend
		// keeps them.
		stored, err := m.store.GetKeySet(ctx)
		if err != nil {
			return fmt.Errorf("reading key set: %w", err)
		}
		return m.install(stored)
	}
	return fmt.Errorf("keys: key set kept changing under %d attempts: %w", casAttempts, storage.ErrConflict)
}

// rotationDue lists the algorithms whose active key has signed for
// RotationPeriod and whose next key may sign.
func (m *Manager) rotationDue(keys []storage.SigningKey, now time.Time) []string {
	var algs []string
	for _, alg := range m.cfg.Algorithms {
		a := find(keys, alg, storage.KeyActive)
		if a < 0 || now.Before(keys[a].ActivateAt.Add(m.cfg.RotationPeriod)) {
			continue
		}
		if _, ready := m.readyAt(keys, []string{alg}, now); ready {
			algs = append(algs, alg)
		}
	}
	return algs
}

// readyAt reports whether the next key of every alg has been published for
// PublishAhead, and if not, from when they all will have been.
func (m *Manager) readyAt(keys []storage.SigningKey, algs []string, now time.Time) (time.Time, bool) {
	var at time.Time
	for _, alg := range algs {
		n := find(keys, alg, storage.KeyNext)
		if n < 0 {
			// A next key made now is published for zero time.
			at = later(at, now.Add(m.cfg.PublishAhead))
			continue
		}
		at = later(at, keys[n].CreatedAt.Add(m.cfg.PublishAhead))
	}
	return at, !now.Before(at)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// rotate promotes next to active and retires the active key for each alg.
// The new next key is made by ensure.
func (m *Manager) rotate(keys []storage.SigningKey, algs []string, now time.Time, gen *keygen) ([]storage.SigningKey, error) {
	for _, alg := range algs {
		n := find(keys, alg, storage.KeyNext)
		if n < 0 {
			k, err := gen.take(alg)
			if err != nil {
				return nil, err
			}
			k.CreatedAt = now
			keys = append(keys, k)
			n = len(keys) - 1
		}
		if a := find(keys, alg, storage.KeyActive); a >= 0 {
			keys[a].State = storage.KeyRetired
			keys[a].RetiredAt = now
			keys[a].DeleteAt = now.Add(m.cfg.RetireAfter)
		}
		keys[n].State = storage.KeyActive
		keys[n].ActivateAt = now
	}
	return keys, nil
}

// ensure makes sure every configured algorithm has an active and a next key.
// Keys of algorithms this replica does not sign with are left as they are:
// another replica may be configured for them.
func (m *Manager) ensure(keys []storage.SigningKey, now time.Time, gen *keygen) ([]storage.SigningKey, error) {
	for _, alg := range m.cfg.Algorithms {
		if find(keys, alg, storage.KeyActive) < 0 {
			// The very first key signs at once: there is nothing else to sign with.
			k, err := gen.take(alg)
			if err != nil {
				return nil, err
			}
			k.State, k.CreatedAt, k.ActivateAt = storage.KeyActive, now, now
			keys = append(keys, k)
		}
		if find(keys, alg, storage.KeyNext) < 0 {
			k, err := gen.take(alg)
			if err != nil {
				return nil, err
			}
			k.State, k.CreatedAt, k.ActivateAt = storage.KeyNext, now, now.Add(m.cfg.PublishAhead)
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// prune returns keys without the retired keys whose deletion time has come,
// as a fresh slice.
func prune(keys []storage.SigningKey, now time.Time) []storage.SigningKey {
	out := make([]storage.SigningKey, 0, len(keys)+4)
	for _, k := range keys {
		if k.State == storage.KeyRetired && !k.DeleteAt.IsZero() && !now.Before(k.DeleteAt) {
			continue
		}
		out = append(out, k)
	}
	return out
}

// find returns the index of the newest key of alg in state, or -1.
func find(keys []storage.SigningKey, alg string, state storage.KeyState) int {
	best := -1
	for i, k := range keys {
		if k.Algorithm == alg && k.State == state && (best < 0 || k.CreatedAt.After(keys[best].CreatedAt)) {
			best = i
		}
	}
	return best
}

func activeKIDs(keys []storage.SigningKey) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		if k.State == storage.KeyActive {
			if i := find(keys, k.Algorithm, storage.KeyActive); keys[i].ID == k.ID {
				out[k.Algorithm] = k.ID
			}
		}
	}
	return out
}

// sortKeys orders the set active, next, retired; then by configured
// algorithm order, newest first. Clients that naively take the first key of
// a JWKS thus get a signing key.
func sortKeys(keys []storage.SigningKey, algs []string) {
	rank := map[storage.KeyState]int{storage.KeyActive: 0, storage.KeyNext: 1, storage.KeyRetired: 2}
	algIdx := func(a string) int {
		if i := slices.Index(algs, a); i >= 0 {
			return i
		}
		return len(algs)
	}
	slices.SortStableFunc(keys, func(a, b storage.SigningKey) int {
		if d := rank[a.State] - rank[b.State]; d != 0 {
			return d
		}
		if d := algIdx(a.Algorithm) - algIdx(b.Algorithm); d != 0 {
			return d
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
}

// install builds a snapshot of set and serves it. Callers hold writeMu, so
// installs never race within the process; the stored version only grows
// through other replicas, so whatever was read last is the newest. A lower
// version than the one served (a restored database) is installed too.
func (m *Manager) install(set storage.KeySet) error {
	prev := m.snap.Load()
	if prev != nil && prev.set.Version == set.Version {
		return nil // the contract bumps the version on every change
	}
	s, err := m.build(set, prev)
	if err != nil {
		return err
	}
	m.snap.Store(s)
	m.log.Info("key set loaded", "version", s.set.Version, "keys", len(s.set.Keys), "signing", activeKIDs(s.set.Keys))
	return nil
}

func (m *Manager) build(set storage.KeySet, prev *snapshot) (*snapshot, error) {
	keys := slices.Clone(set.Keys)
	sortKeys(keys, m.cfg.Algorithms)
	s := &snapshot{
		set:     storage.KeySet{Version: set.Version, Keys: keys},
		signers: map[string]signer{},
		all:     map[string]crypto.Signer{},
		jwks:    jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))},
	}
	for _, k := range keys {
		pub, err := publicJWK(k)
		if err != nil {
			return nil, fmt.Errorf("keys: %w", err)
		}
		s.jwks.Keys = append(s.jwks.Keys, pub)
		if k.State != storage.KeyActive {
			continue
		}
		if i := find(keys, k.Algorithm, storage.KeyActive); keys[i].ID != k.ID {
			continue
		}
		// Re-use the parsed key of the previous snapshot: decrypting and
		// parsing an RSA key at every reload is needless work.
		key := (crypto.Signer)(nil)
		if prev != nil {
			key = prev.all[k.ID]
		}
		if key == nil {
			if key, err = openKey(k, m.ring); err != nil {
				return nil, fmt.Errorf("keys: %w", err)
			}
		}
		s.all[k.ID] = key
		s.signers[k.Algorithm] = signer{kid: k.ID, key: key}
	}
	body, err := json.Marshal(s.jwks)
	if err != nil {
		return nil, fmt.Errorf("keys: encoding jwks: %w", err)
	}
	s.body, s.etag = body, etagOf(body)
	s.etagHeader, s.lengthHeader = []string{s.etag}, []string{strconv.Itoa(len(body))}
	return s, nil
}

func (m *Manager) logChanges(ctx context.Context, before, after []storage.SigningKey, version int64) {
	old := map[string]storage.KeyState{}
	for _, k := range before {
		old[k.ID] = k.State
	}
	kept := map[string]bool{}
	for _, k := range after {
		kept[k.ID] = true
		if s, ok := old[k.ID]; !ok || s != k.State {
			m.log.InfoContext(ctx, "signing key changed", "kid", k.ID, "alg", k.Algorithm, "state", string(k.State), "version", version)
		}
	}
	for _, k := range before {
		if !kept[k.ID] {
			m.log.InfoContext(ctx, "signing key changed", "kid", k.ID, "alg", k.Algorithm, "state", "deleted", "version", version)
		}
	}
}

func (m *Manager) now() time.Time { return m.cfg.Now().UTC().Truncate(time.Microsecond) }

// keygen hands out new keys during a read-modify-CAS loop and keeps the ones
// a lost round made for the next round: RSA key generation is slow.
type keygen struct {
	bits int
	ring *secrets.Keyring
	made []storage.SigningKey
	used []bool
}

func (g *keygen) rewind() { clear(g.used) }

func (g *keygen) take(alg string) (storage.SigningKey, error) {
	for i, k := range g.made {
		if !g.used[i] && k.Algorithm == alg {
			g.used[i] = true
			return k, nil
		}
	}
	k, _, err := newKey(alg, g.bits, g.ring)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: %w", err)
	}
	g.made = append(g.made, k)
	g.used = append(g.used, true)
	return k, nil
}

// maxAge is the JWKS Cache-Control max-age in seconds.
func (m *Manager) maxAge() string { return strconv.Itoa(int(m.cfg.JWKSMaxAge / time.Second)) }
