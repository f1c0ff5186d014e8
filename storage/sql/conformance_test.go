package sql_test

import (
	"testing"

	"github.com/gatehouse-idp/gatehouse/storage"
	"github.com/gatehouse-idp/gatehouse/storage/sql/sqltest"
	"github.com/gatehouse-idp/gatehouse/storage/storagetest"
)

func TestConformanceSQLite(t *testing.T) {
	t.Run("Durable", func(t *testing.T) {
		storagetest.RunDurable(t, func(t *testing.T) storage.Durable { return sqltest.NewSQLite(t) })
	})
	t.Run("Ephemeral", func(t *testing.T) {
		storagetest.RunEphemeral(t, func(t *testing.T) storage.Ephemeral { return sqltest.NewSQLite(t) })
	})
}

func TestConformancePostgres(t *testing.T) {
	t.Run("Durable", func(t *testing.T) {
		storagetest.RunDurable(t, func(t *testing.T) storage.Durable { return sqltest.NewPostgres(t) })
	})
	t.Run("Ephemeral", func(t *testing.T) {
		storagetest.RunEphemeral(t, func(t *testing.T) storage.Ephemeral { return sqltest.NewPostgres(t) })
	})
}
