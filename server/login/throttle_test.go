package login

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	th := throttle{cfg: ThrottleConfig{MaxAccountFailures: 5, BaseBackoff: 30 * time.Second, MaxBackoff: 10 * time.Minute}.withDefaults()}
	for _, tc := range []struct {
		count int64
		want  time.Duration
	}{
		{5, 30 * time.Second},
		{6, time.Minute},
		{7, 2 * time.Minute},
		{9, 8 * time.Minute},
		{10, 10 * time.Minute},
		{1000, 10 * time.Minute},
	} {
		if got := th.backoff(tc.count, 5); got != tc.want {
			t.Errorf("backoff(%d failures, max 5) = %v, want %v", tc.count, got, tc.want)
		}
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Nanosecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", time.Minute: "60"} {
		if got := retryAfter(d); got != want {
			t.Errorf("retryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFormActionSource(t *testing.T) {
	for in, want := range map[string]string{
		"https://shop.example:8443/cb?x=1": "https://shop.example:8443",
		"com.example.app:/oauth/cb":        "com.example.app:",
		"http://127.0.0.1:5000/cb":         "http://127.0.0.1:5000",
		"":                                 "",
	} {
		if got := formActionSource(in); got != want {
			t.Errorf("formActionSource(%q) = %q, want %q", in, got, want)
		}
	}
}
