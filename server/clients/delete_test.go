package clients

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/storage"
)

// consentTo stores subject's consent to clientID.
func consentTo(t *testing.T, st storage.ConsentStore, subject, clientID string) {
	t.Helper()
	err := st.PutConsent(context.Background(), storage.Consent{Subject: subject, ClientID: clientID,
		Scopes: []string{"openid", "profile"}, GrantedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
}

func createWithID(t *testing.T, s *Service, id string) {
	t.Helper()
	_, err := s.Create(context.Background(), Metadata{RedirectURIs: []string{"https://" + id + ".example/cb"}},
		CreateOptions{Trusted: true, ClientID: id})
	if err != nil {
		t.Fatalf("creating client %q: %v", id, err)
	}
}

func consentClientIDs(t *testing.T, st storage.ConsentStore, subject string) []string {
	t.Helper()
	cs, err := st.ListConsents(context.Background(), subject)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ClientID)
	}
	return ids
}

// An admin who deletes a client and registers the same client ID again must
// not find the old users' consents on the new client: they would skip the
// consent page for an application they never saw.
func TestDeleteDropsTheClientsConsents(t *testing.T) {
	db := newStore(t)
	s := New(db, newRing(t), nil)
	ctx := context.Background()
	createWithID(t, s, "shop")
	createWithID(t, s, "news")
	consentTo(t, db, "alice", "shop")
	consentTo(t, db, "bob", "shop")
	consentTo(t, db, "alice", "news")

	if err := s.Delete(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"alice", "bob"} {
		if _, err := db.GetConsent(ctx, subject, "shop"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s's consent to the deleted client: got %v, want ErrNotFound", subject, err)
		}
	}
	if got := consentClientIDs(t, db, "alice"); !slices.Equal(got, []string{"news"}) {
		t.Errorf("alice's consents after deleting shop: got %q, want [news] (another client's consent kept)", got)
	}

	createWithID(t, s, "shop")
	if _, err := db.GetConsent(ctx, "alice", "shop"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("consent to the re-created client: got %v, want ErrNotFound", err)
	}
}

// failingStore is the real store with one operation made to fail, to check
// what a failure half way through Delete leaves behind.
type failingStore struct {
	Store
	deleteClient, deleteConsents error
}

func (f failingStore) DeleteClient(ctx context.Context, id string) error {
	if f.deleteClient != nil {
		return f.deleteClient
	}
	return f.Store.DeleteClient(ctx, id)
}

func (f failingStore) DeleteConsentsByClient(ctx context.Context, clientID string) (int, error) {
	if f.deleteConsents != nil {
		return 0, f.deleteConsents
	}
	return f.Store.DeleteConsentsByClient(ctx, clientID)
}

// No failure of Delete leaves the client ID free to re-create with its old
// consents: when the client cannot be deleted its consents may be gone, and
// when the consents cannot be deleted the client stays.
func TestDeleteFailureLeavesNoReCreatableIDWithConsents(t *testing.T) {
	ctx := context.Background()
	injected := errors.New("injected failure")

	t.Run("client deletion fails", func(t *testing.T) {
		db := newStore(t)
		ring := newRing(t)
		createWithID(t, New(db, ring, nil), "shop")
		consentTo(t, db, "alice", "shop")
		s := New(failingStore{Store: db, deleteClient: injected}, ring, nil)
		if err := s.Delete(ctx, "shop"); !errors.Is(err, injected) {
			t.Fatalf("Delete: got %v, want the injected failure", err)
		}
		if _, err := db.GetClient(ctx, "shop"); err != nil {
			t.Fatalf("the client after a failed delete: %v", err)
		}
		if _, err := db.GetConsent(ctx, "alice", "shop"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("consent after a failed client delete: got %v, want ErrNotFound (consents go first)", err)
		}
	})

	t.Run("consent deletion fails", func(t *testing.T) {
		db := newStore(t)
		ring := newRing(t)
		createWithID(t, New(db, ring, nil), "shop")
		consentTo(t, db, "alice", "shop")
		s := New(failingStore{Store: db, deleteConsents: injected}, ring, nil)
		if err := s.Delete(ctx, "shop"); !errors.Is(err, injected) {
			t.Fatalf("Delete: got %v, want the injected failure", err)
		}
		if _, err := db.GetClient(ctx, "shop"); err != nil {
			t.Errorf("the client after its consents could not be deleted: got %v, want it kept", err)
		}
		if _, err := db.GetConsent(ctx, "alice", "shop"); err != nil {
			t.Errorf("consent after a failed consent delete: %v", err)
		}
	})
}

// Deleting an unknown client still reports ErrNotFound, and clears any
// consent left under that ID (from before this fix) on the way.
func TestDeleteUnknownClientClearsOrphanConsents(t *testing.T) {
	db := newStore(t)
	s := New(db, newRing(t), nil)
	ctx := context.Background()
	consentTo(t, db, "alice", "gone")
	var nf *NotFoundError
	if err := s.Delete(ctx, "gone"); !errors.Is(err, storage.ErrNotFound) || !errors.As(err, &nf) {
		t.Errorf("Delete of an unknown client: got %v, want a NotFoundError", err)
	}
	if _, err := db.GetConsent(ctx, "alice", "gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("orphan consent after Delete: got %v, want ErrNotFound", err)
	}
}

// Consents left under a client ID with no client (a client deleted before
// Delete took its consents along, or a consent page submitted while it was
// being deleted) do not pass to a client created later with that ID.
func TestCreateWithChosenIDDropsStaleConsents(t *testing.T) {
	db := newStore(t)
	s := New(db, newRing(t), nil)
	ctx := context.Background()
	consentTo(t, db, "alice", "shop")
	consentTo(t, db, "alice", "news")
	createWithID(t, s, "shop")
	if _, err := db.GetConsent(ctx, "alice", "shop"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stale consent after creating its client ID: got %v, want ErrNotFound", err)
	}
	if _, err := db.GetConsent(ctx, "alice", "news"); err != nil {
		t.Errorf("another client ID's consent: %v", err)
	}

	// Creating an ID that is taken fails and leaves that client's consents.
	consentTo(t, db, "bob", "shop")
	_, err := s.Create(ctx, Metadata{RedirectURIs: []string{"https://shop.example/cb"}}, CreateOptions{Trusted: true, ClientID: "shop"})
	if !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Create with a taken ID: got %v, want ErrConflict", err)
	}
	if _, err := db.GetConsent(ctx, "bob", "shop"); err != nil {
		t.Errorf("the existing client's consent after a conflicting Create: %v", err)
	}
}
