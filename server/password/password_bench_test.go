package password

import "testing"

// BenchmarkVerifyDefault is one sign-in's password check with the default
// parameters (argon2id, 19 MiB, 2 passes, 1 lane): what bounds full
// sign-ins per second. With -cpu 2 and RunParallel it shows what two cores
// allow.
func BenchmarkVerifyDefault(b *testing.B) {
	h, err := New(DefaultParams)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := h.Hash("bench-password-0123")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, _, err := h.Verify("bench-password-0123", enc); !ok || err != nil {
				b.Fatal("no match", err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if ok, _, err := h.Verify("bench-password-0123", enc); !ok || err != nil {
					b.Error("no match", err)
					return
				}
			}
		})
	})
}
