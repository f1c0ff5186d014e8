package redis_test

import (
	"testing"

	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

func BenchmarkRedis(b *testing.B) {
	storagetest.BenchEphemeral(b, redistest.New(b))
}
