package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/TritonDataCenter/rebalancer/evacuate"
	"github.com/TritonDataCenter/rebalancer/evacuate/sqlitestore"
)

// A store named by its directory lives in jobs.db, created with the
// directory, and its mark beside it; the file deleted under the open store
// is noticed, and the empty store in its place refused at the next open.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "manager")
	file := filepath.Join(dir, "jobs.db")
	if got := sqlitestore.File(dir); got != dir {
		t.Errorf("File of a missing directory = %s, want it as it is", got)
	}
	opts := evacuate.StoreOptions{MarkFile: sqlitestore.DefaultMarkFile(file)}
	st, err := sqlitestore.Open(ctx, file, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := sqlitestore.File(dir); got != file {
		t.Errorf("File(%s) = %s, want %s", dir, got, file)
	}
	if got := sqlitestore.DefaultMarkFile(dir); got != file+".mark" {
		t.Errorf("DefaultMarkFile(%s) = %s, want %s.mark", dir, got, file)
	}
	if _, err := os.Stat(file + ".mark"); err != nil {
		t.Errorf("no mark: %v", err)
	}
	if err := st.Check(ctx); err != nil {
		t.Errorf("Check of a new store: %v", err)
	}
	for _, f := range []string{"jobs.db", "jobs.db-wal", "jobs.db-shm"} {
		os.Remove(filepath.Join(dir, f))
	}
	if err := st.Check(ctx); err == nil || !strings.Contains(err.Error(), file+" was deleted while in use") {
		t.Errorf("Check after the file was deleted = %v", err)
	}
	st.Close()
	if _, err := sqlitestore.Open(ctx, dir, opts); !errors.Is(err, evacuate.ErrStoreReplaced) {
		t.Errorf("reopening the deleted store = %v, want ErrStoreReplaced", err)
	}
}

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "jobs")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// The manager's default: a directory, which holds jobs.db, and the
	// mark that tells the store from an empty one put in its place.
	store, err := sqlitestore.Open(context.Background(), dir, evacuate.StoreOptions{MarkFile: sqlitestore.DefaultMarkFile(dir)})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	fmt.Println(filepath.Base(sqlitestore.File(dir)), store.Check(context.Background()))
	// Output: jobs.db <nil>
}
