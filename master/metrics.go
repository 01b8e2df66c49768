package master

import (
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/api/mesos"
)

type metrics struct {
	offers            prometheus.Counter
	launched          prometheus.Counter
	calls             *prometheus.CounterVec
	updates           *prometheus.CounterVec
	subscriptions     *prometheus.CounterVec
	allocationSeconds prometheus.Histogram
	agentPingTimeouts prometheus.Counter
	offersRescinded   prometheus.Counter
	elected           prometheus.Gauge
	elections         prometheus.Counter
}

// counts is a consistent reading of the registry's sizes.
type counts struct {
	agents, agentsActive, frameworks, frameworksActive, offers int
	tasks                                                      map[mesos.TaskState]int
}

// counts reads the registry's sizes under mu. Tasks by state come from
// the running count putTask, dropTask and setTaskState keep, so a scrape
// costs no walk over every task.
func (m *Master) counts() counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := counts{agents: len(m.agents), frameworks: len(m.frameworks), offers: len(m.offers), tasks: make(map[mesos.TaskState]int, len(m.byState))}
	for _, a := range m.agents {
		if a.conn != nil {
			c.agentsActive++
		}
	}
	for _, f := range m.frameworks {
		if f.conn != nil {
			c.frameworksActive++
		}
	}
	// A copy of the running count: the caller reads it after mu is let go.
	for s, n := range m.byState {
		c.tasks[s] = n
	}
	return c
}

// newMetrics makes the master's metrics, once per process: they outlive
// terms, and the gauges read whichever term leads at scrape time.
func newMetrics(reg prometheus.Registerer, s *server) *metrics {
	mt := &metrics{
		elected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "keel", Subsystem: "master", Name: "elected",
			Help: "1 while this master leads, else 0."}),
		elections: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "master", Name: "elections_total",
			Help: "Terms this master has started as leader."}),
		offers:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "master", Name: "offers_total", Help: "Offers sent to frameworks."}),
		launched: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "master", Name: "tasks_launched_total", Help: "Tasks launched."}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "master", Name: "scheduler_calls_total",
			Help: "Scheduler API calls by type."}, []string{"type"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "master", Name: "status_updates_total",
			Help: "Task status updates received from agents, by state."}, []string{"state"}),
		subscriptions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "keel", Subsystem: "master", Name: "subscriptions_total",
			Help: "Streams opened, by kind (framework, agent, operator)."}, []string{"kind"}),
		agentPingTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "master", Name: "agent_partitions_total",
			Help: "Agents taken for partitioned after missing --max_agent_ping_timeouts pings."}),
		offersRescinded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "keel", Subsystem: "master", Name: "offers_rescinded_total",
			Help: "Offers rescinded, by --offer_timeout or because their agent went away."}),
		allocationSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "keel", Subsystem: "master", Name: "allocation_duration_seconds",
			Help: "Time of one allocator cycle.", Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10)}),
	}
	if reg == nil {
		return mt
	}
	reg.MustRegister(mt.offers, mt.launched, mt.calls, mt.updates, mt.subscriptions, mt.allocationSeconds, mt.agentPingTimeouts, mt.offersRescinded,
		mt.elected, mt.elections)
	reg.MustRegister(&gaugeCollector{s: s})
	return mt
}

// gaugeCollector reads the registry's sizes at scrape time.
type gaugeCollector struct{ s *server }

var (
	descAgents     = prometheus.NewDesc("keel_master_agents", "Registered agents by connection.", []string{"connected"}, nil)
	descFrameworks = prometheus.NewDesc("keel_master_frameworks", "Registered frameworks by connection.", []string{"connected"}, nil)
	descTasks      = prometheus.NewDesc("keel_master_tasks", "Known tasks by state.", []string{"state"}, nil)
	descOffers     = prometheus.NewDesc("keel_master_outstanding_offers", "Offers not yet answered.", nil, nil)
)

// Describe implements prometheus.Collector.
func (g *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAgents
	ch <- descFrameworks
	ch <- descTasks
	ch <- descOffers
}

// Collect implements prometheus.Collector.
func (g *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	var c counts
	if m := g.s.cur.Load(); m != nil {
		c = m.counts()
	}
	ch <- prometheus.MustNewConstMetric(descAgents, prometheus.GaugeValue, float64(c.agentsActive), "true")
	ch <- prometheus.MustNewConstMetric(descAgents, prometheus.GaugeValue, float64(c.agents-c.agentsActive), "false")
	ch <- prometheus.MustNewConstMetric(descFrameworks, prometheus.GaugeValue, float64(c.frameworksActive), "true")
	ch <- prometheus.MustNewConstMetric(descFrameworks, prometheus.GaugeValue, float64(c.frameworks-c.frameworksActive), "false")
	for s, n := range c.tasks {
		ch <- prometheus.MustNewConstMetric(descTasks, prometheus.GaugeValue, float64(n), string(s))
	}
	ch <- prometheus.MustNewConstMetric(descOffers, prometheus.GaugeValue, float64(c.offers))
}

// handleMetricsSnapshot serves Mesos' /metrics/snapshot with the Mesos
// metric names that have a Keel equivalent.
func (m *Master) handleMetricsSnapshot(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, m.mesosMetrics())
}

// getMetrics answers the operator API's GET_METRICS, sorted by name.
func (m *Master) getMetrics() *mesos.GetMetrics {
	snap := m.mesosMetrics()
	out := &mesos.GetMetrics{Metrics: make([]mesos.Metric, 0, len(snap))}
	for name, v := range snap {
		out.Metrics = append(out.Metrics, mesos.Metric{Name: name, Value: v})
	}
	sort.Slice(out.Metrics, func(i, j int) bool { return out.Metrics[i].Name < out.Metrics[j].Name })
	return out
}

// mesosMetrics is the master's state under Mesos' metric names.
func (m *Master) mesosMetrics() map[string]float64 {
	c := m.counts()
	out := map[string]float64{
		"master/elected":                 1,
		"master/uptime_secs":             0,
		"master/slaves_active":           float64(c.agentsActive),
		"master/slaves_connected":        float64(c.agentsActive),
		"master/slaves_disconnected":     float64(c.agents - c.agentsActive),
		"master/frameworks_active":       float64(c.frameworksActive),
		"master/frameworks_connected":    float64(c.frameworksActive),
		"master/frameworks_disconnected": float64(c.frameworks - c.frameworksActive),
		"master/outstanding_offers":      float64(c.offers),
		"master/tasks_staging":           float64(c.tasks[mesos.TaskStaging]),
		"master/tasks_starting":          float64(c.tasks[mesos.TaskStarting]),
		"master/tasks_running":           float64(c.tasks[mesos.TaskRunning]),
		"master/tasks_killing":           float64(c.tasks[mesos.TaskKilling]),
		"master/tasks_unreachable":       float64(c.tasks[mesos.TaskUnreachable]),
	}
	out["master/uptime_secs"] = timeSince(m.start)
	return out
}
