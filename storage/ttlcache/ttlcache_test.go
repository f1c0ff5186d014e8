package ttlcache

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestGetPutExpiry(t *testing.T) {
	c := New[string, int](10, nil)
	_, ok, gen := c.Get("a", t0)
	if ok {
		t.Fatal("empty cache returned a value")
	}
	c.Put("a", 1, gen, t0.Add(time.Second), t0)
	if v, ok, _ := c.Get("a", t0.Add(time.Second-1)); !ok || v != 1 {
		t.Errorf("Get before the deadline = %d, %v", v, ok)
	}
	if _, ok, _ := c.Get("a", t0.Add(time.Second)); ok {
		t.Error("Get at the deadline returned the value")
	}
}

// TestForgetDropsRacingPut: a value read before an invalidation is not
// cached after it.
func TestForgetDropsRacingPut(t *testing.T) {
	c := New[string, int](10, nil)
	_, _, gen := c.Get("a", t0) // a reader starts
	c.ForgetKey("a")            // a writer invalidates
	c.Put("a", 1, gen, t0.Add(time.Minute), t0)
	if _, ok, _ := c.Get("a", t0); ok {
		t.Error("ForgetKey: a stale read was cached")
	}
	_, _, gen = c.Get("b", t0)
	c.Forget(func(k string) bool { return k == "zzz" })
	c.Put("b", 2, gen, t0.Add(time.Minute), t0)
	if _, ok, _ := c.Get("b", t0); ok {
		t.Error("Forget: a stale read was cached")
	}
	c.Put("b", 2, c.Gen(), t0.Add(time.Minute), t0)
	c.Put("c", 3, c.Gen(), t0.Add(time.Minute), t0)
	c.Forget(func(k string) bool { return k == "b" })
	if _, ok, _ := c.Get("b", t0); ok {
		t.Error("Forget kept a matching entry")
	}
	if _, ok, _ := c.Get("c", t0); !ok {
		t.Error("Forget dropped an entry that did not match")
	}
}

// TestBoundedExpiredFirst: never more than the size; expired entries are
// evicted before live ones.
func TestBoundedExpiredFirst(t *testing.T) {
	c := New[string, int](3, nil)
	for i := range 10 {
		c.Put(fmt.Sprint(i), i, c.Gen(), t0.Add(time.Minute), t0)
		if c.Len() > 3 {
			t.Fatalf("%d entries after %d puts", c.Len(), i+1)
		}
	}
	if _, ok, _ := c.Get("9", t0); !ok {
		t.Error("the latest entry is missing")
	}
	c2 := New[string, int](3, nil)
	c2.Put("old", 0, 0, t0.Add(time.Second), t0)
	now := t0.Add(time.Second)
	for _, k := range []string{"x", "y", "z"} {
		c2.Put(k, 1, 0, now.Add(time.Minute), now)
	}
	for _, k := range []string{"x", "y", "z"} {
		if _, ok, _ := c2.Get(k, now); !ok {
			t.Errorf("live entry %s evicted while an expired one was there", k)
		}
	}
	if New[int, int](0, nil).Cap() != 1 {
		t.Error("a size below one is not raised to one")
	}
}

func TestCloneInAndOut(t *testing.T) {
	c := New[string, []string](3, slices.Clone[[]string])
	in := []string{"a"}
	c.Put("k", in, 0, t0.Add(time.Minute), t0)
	in[0] = "changed"
	out, _, _ := c.Get("k", t0)
	out[0] = "changed too"
	if again, _, _ := c.Get("k", t0); again[0] != "a" {
		t.Errorf("cached value changed through a caller's copy: %q", again[0])
	}
}
