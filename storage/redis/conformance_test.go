package redis_test

import (
	"testing"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/redis/redistest"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.RunEphemeral(t, func(t *testing.T) storage.Ephemeral { return redistest.New(t) })
}
