package testbed_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/TritonDataCenter/rebalancer/internal/testbed"
)

// Evacuate a shark of an in-process fleet with the real engine, then check
// the whole fleet from scratch.
func Example() {
	ctx := context.Background()
	const evacuated = "1.stor.demo.example"
	f, err := testbed.Start(ctx, testbed.Config{
		Sharks:  3,
		Objects: testbed.Objects{Count: 100, Seed: 1, Pin: evacuated},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	e, err := f.NewEngine(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	job, err := e.CreateJob(ctx, evacuated, testbed.FastJobOptions())
	if err != nil {
		log.Fatal(err)
	}
	for {
		st, err := e.JobStatus(ctx, job.ID)
		if err != nil {
			log.Fatal(err)
		}
		if st.Job.State.Terminal() && !st.Running {
			fmt.Println("job:", st.Job.State)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	rep, err := f.Verify(ctx, evacuated)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep)
	// Output:
	// job: complete
	// 100 objects (918406 bytes), 200/200 copies ok; off 1.stor.demo.example: skipped 0 (single copy 0, no destination 0)
}
