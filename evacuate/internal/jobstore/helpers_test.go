package jobstore

import (
	"context"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/evacuate/internal/storetest"
	"github.com/TritonDataCenter/rebalancer/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens the store named by dsn, a postgres:// URL or a SQLite file.
func open(ctx context.Context, dsn string, mark MarkOptions) (*Store, error) {
	db := DB{}
	var err error
	if strings.HasPrefix(dsn, "postgres") {
		db.Postgres, db.Name = true, dsn
		db.DB, err = storetest.Postgres(dsn)
	} else {
		db.File = dsn
		db.DB, err = storetest.SQLite(dsn)
	}
	if err != nil {
		return nil, err
	}
	return Open(ctx, db, mark)
}
