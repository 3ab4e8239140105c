package testbed

import (
	"context"
	"testing"
)

// BenchmarkStart measures bringing up and closing a fleet of four sharks.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		f, err := Start(context.Background(), Config{})
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkPopulate measures writing objects of 1-16 KiB with two copies
// each; objects/s is the figure of merit.
func BenchmarkPopulate(b *testing.B) {
	f := New(b, Config{})
	ctx := context.Background()
	const n = 2000
	seed := uint64(0)
	for b.Loop() {
		seed++
		if _, err := f.Populate(ctx, Objects{Count: n, Seed: seed}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkVerify measures a from-scratch check of 2000 objects (4000
// copies).
func BenchmarkVerify(b *testing.B) {
	f := New(b, Config{Objects: Objects{Count: 2000, Seed: 1}})
	ctx := context.Background()
	for b.Loop() {
		rep, err := f.Verify(ctx, "")
		if err != nil || !rep.OK() {
			b.Fatal(err, rep.Err())
		}
	}
	b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkEvacuate measures a whole evacuation of 1000 objects off one of
// four sharks, from job creation to completion.
func BenchmarkEvacuate(b *testing.B) {
	ctx := context.Background()
	const n = 1000
	for b.Loop() {
		b.StopTimer()
		f, err := Start(ctx, Config{Objects: Objects{Count: n, Seed: 1, Pin: shark1}})
		if err != nil {
			b.Fatal(err)
		}
		e, err := f.NewEngine(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		j, err := e.CreateJob(ctx, shark1, FastJobOptions())
		if err != nil {
			b.Fatal(err)
		}
		for {
			st, err := e.JobStatus(ctx, j.ID)
			if err != nil {
				b.Fatal(err)
			}
			if st.Job.State.Terminal() && !st.Running {
				break
			}
		}
		b.StopTimer()
		f.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "objects/s")
}
