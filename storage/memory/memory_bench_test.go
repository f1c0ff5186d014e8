package memory

import (
	"testing"

	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

func BenchmarkMemory(b *testing.B) {
	s := New()
	b.Run("Durable", func(b *testing.B) { storagetest.BenchDurable(b, s) })
	b.Run("Ephemeral", func(b *testing.B) { storagetest.BenchEphemeral(b, s) })
}
