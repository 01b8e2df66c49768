package agentd

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	launched     prometheus.Counter
	running      prometheus.Gauge
	terminations *prometheus.CounterVec
	updatesSent  prometheus.Counter
	pending      prometheus.Gauge
	connected    prometheus.Gauge
	// sandboxesCollected counts sandboxes removed by the GC.
	sandboxesCollected prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		launched: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "agent", Name: "tasks_launched_total", Help: "Tasks launched."}),
		running:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "agent", Name: "tasks_running", Help: "Tasks whose process is alive."}),
		terminations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "agent", Name: "task_terminations_total",
			Help: "Tasks that ended, by terminal state."}, []string{"state"}),
		updatesSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "agent", Name: "status_updates_sent_total", Help: "Status update sends, retries included."}),
		pending:     prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "agent", Name: "status_updates_pending", Help: "Status updates not yet acknowledged."}),
		connected:   prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "agent", Name: "master_connected", Help: "1 while the stream to the master is up."}),
		sandboxesCollected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "agent", Name: "sandboxes_collected_total",
			Help: "Sandboxes of finished tasks removed by the garbage collector."}),
	}
	if reg != nil {
		reg.MustRegister(m.launched, m.running, m.terminations, m.updatesSent, m.pending, m.connected, m.sandboxesCollected)
	}
	return m
}
