package jobapi_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testbed"
	"github.com/TritonDataCenter/rebalancer/jobapi"
)

// A manager's job API, served over an engine, and a client creating a job
// through it and reading its status, as rebalancer-adm does. The engine
// runs on the module's test fleet (a small Manta in this process).
func ExampleClient() {
	ctx := context.Background()
	fleet, err := testbed.Start(ctx, testbed.Config{Objects: testbed.Objects{Count: 60, Pin: "1.stor.demo.example"}})
	if err != nil {
		log.Fatal(err)
	}
	defer fleet.Close()
	engine, err := fleet.NewEngine(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	api := &jobapi.Server{Engine: engine, Domain: fleet.Domain(), Logger: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()

	c, err := jobapi.NewClient(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	id, err := c.CreateJob(ctx, jobapi.CreateParams{FromShark: "1.stor"}) // the manager adds its domain
	if err != nil {
		log.Fatal(err)
	}
	// A client would poll JobStatus until the state is terminal; here the
	// engine says when the job ends.
	if _, err := engine.Wait(ctx, id); err != nil {
		log.Fatal(err)
	}
	st, err := c.JobStatus(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s: %d of %d objects complete\n", st.Config.FromShark.MantaStorageID, st.State.Title(), st.Results.Complete, st.Results.Total)
	// Output: 1.stor.demo.example Complete: 60 of 60 objects complete
}

// Durations as the status page and rebalancer-adm show them.
func ExampleFormatDuration() {
	for _, d := range []time.Duration{45 * time.Second, 185 * time.Second, 2*time.Hour + 4*time.Minute, 76 * time.Hour} {
		fmt.Println(jobapi.FormatDuration(d))
	}
	// Output:
	// 45s
	// 3m05s
	// 2h04m
	// 3d04h
}
