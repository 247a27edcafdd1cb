package audit

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sinkFile is the metric label of the file log.
const sinkFile = "file"

type metrics struct {
	written *prometheus.CounterVec
	failed  *prometheus.CounterVec
	lost    prometheus.Counter
	fsync   prometheus.Histogram
	queue   prometheus.Gauge

	cpFailed prometheus.Counter
	cpAge    prometheus.GaugeFunc
	diskFree prometheus.GaugeFunc
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.written, m.failed, m.lost, m.fsync, m.queue, m.cpFailed, m.cpAge, m.diskFree}
}

// newMetrics builds the collectors and registers them on reg (nil: not
// registered). Every label value is created up front so series export 0.
func newMetrics(reg prometheus.Registerer, sinks []namedSink, dir string, c *chain, now func() time.Time) (*metrics, error) {
	m := &metrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "chartguard", Subsystem: "audit", Name: "events_written_total",
			Help: "Audit events written, by sink.",
		}, []string{"sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "chartguard", Subsystem: "audit", Name: "events_failed_total",
			Help: "Audit events whose write or fsync failed, by sink.",
		}, []string{"sink"}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "chartguard", Subsystem: "audit", Name: "events_lost_total",
			Help: "Audit events dropped because the recovery queue was full or the log closed.",
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "chartguard", Subsystem: "audit", Name: "fsync_seconds",
			Help:    "Duration of audit segment fsyncs.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "chartguard", Subsystem: "audit", Name: "queue_length",
			Help: "Audit events waiting in the recovery queue.",
		}),
		cpFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "chartguard", Subsystem: "audit", Name: "checkpoint_failures_total",
			Help: "Signed checkpoints that could not be written.",
		}),
		cpAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "chartguard", Subsystem: "audit", Name: "checkpoint_age_seconds",
			Help: "Age of the oldest audit record no signed checkpoint covers yet (0 when all are).",
		}, func() float64 { return checkpointAge(c, now) }),
		diskFree: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "chartguard", Subsystem: "audit", Name: "disk_free_bytes",
			Help: "Bytes free on the file system of audit.dir (-1 if unknown).",
		}, func() float64 {
			free, err := diskFree(dir)
			if err != nil {
				return -1
			}
			return float64(free)
		}),
	}
	for _, name := range append([]string{sinkFile}, sinkNames(sinks)...) {
		m.written.WithLabelValues(name)
		m.failed.WithLabelValues(name)
	}
	if reg == nil {
		return m, nil
	}
	cs := m.collectors()
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("audit: register metrics: %w", err)
		}
	}
	return m, nil
}

func sinkNames(sinks []namedSink) []string {
	names := make([]string, 0, len(sinks))
	for _, s := range sinks {
		names = append(names, s.name)
	}
	return names
}
