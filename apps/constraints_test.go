package apps

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keelhq/keel/api/marathon"
	"github.com/keelhq/keel/api/mesos"
	"github.com/keelhq/keel/internal/leakcheck"
)

func TestParseConstraint(t *testing.T) {
	cases := []struct {
		c       []string
		wantErr string // "" = valid
	}{
		{[]string{"hostname", "UNIQUE"}, ""},
		{[]string{"hostname", "UNIQUE", ""}, ""},
		{[]string{"hostname", "UNIQUE", "x"}, "does not accept a value"},
		{[]string{"rack", "GROUP_BY"}, ""},
		{[]string{"rack", "GROUP_BY", "3"}, ""},
		{[]string{"rack", "GROUP_BY", "three"}, "integer"},
		{[]string{"rack", "GROUP_BY", "0"}, "integer"},
		{[]string{"zone", "LIKE", "a|b"}, ""},
		{[]string{"zone", "LIKE"}, "regular expression"},
		{[]string{"zone", "LIKE", "a("}, "not a valid regular expression"},
		{[]string{"hostname", "UNLIKE", "bad.*"}, ""},
		{[]string{"hostname", "UNLIKE", "[z-a]"}, "not a valid regular expression"},
		{[]string{"rack", "MAX_PER", "2"}, ""},
		{[]string{"rack", "MAX_PER"}, "positive integer"},
		{[]string{"rack", "MAX_PER", "-1"}, "positive integer"},
		{[]string{"hostname", "CLUSTER", "n1"}, ""},
		{[]string{"hostname", "CLUSTER"}, "non-empty value"},
		{[]string{"zone", "IS", "a"}, ""},
		{[]string{"zone", "IS", ""}, "non-empty value"},
		{[]string{"zone", "NEAR", "a"}, "operator must be one of"},
		{[]string{"zone", "unique"}, "operator must be one of"},
		{[]string{"zone"}, "2 or 3 fields"},
		{[]string{"zone", "IS", "a", "b"}, "2 or 3 fields"},
		{[]string{"", "UNIQUE"}, "field must not be empty"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.c, ","), func(t *testing.T) {
			_, err := parseConstraint(c.c)
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

func TestMeets(t *testing.T) {
	at := func(host string, kv ...string) agentPlace {
		p := agentPlace{Host: host, Attrs: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Attrs[kv[i]] = kv[i+1]
		}
		return p
	}
	r1, r2, r3 := at("n1", "rack", "r1"), at("n2", "rack", "r2"), at("n3", "rack", "r3")
	cases := []struct {
		name   string
		c      []string
		offer  agentPlace
		placed []agentPlace
		want   bool
	}{
		{"@hostname is hostname", []string{"@hostname", "UNIQUE"}, at("n1"), []agentPlace{at("n1")}, false},
		{"unique hostname, none placed", []string{"hostname", "UNIQUE"}, at("n1"), nil, true},
		{"unique hostname, other host", []string{"hostname", "UNIQUE"}, at("n1"), []agentPlace{at("n2")}, true},
		{"unique hostname, same host", []string{"hostname", "UNIQUE"}, at("n1"), []agentPlace{at("n2"), at("n1")}, false},
		{"unique attribute, same rack", []string{"rack", "UNIQUE"}, at("n2", "rack", "r1"), []agentPlace{r1}, false},
		{"unique attribute, missing on offer", []string{"rack", "UNIQUE"}, at("n9"), nil, false},
		{"unique attribute, placed lacks it", []string{"rack", "UNIQUE"}, r1, []agentPlace{at("n9")}, true},
		{"cluster hostname match", []string{"hostname", "CLUSTER", "n1"}, at("n1"), nil, true},
		{"cluster hostname other", []string{"hostname", "CLUSTER", "n1"}, at("n2"), nil, false},
		{"cluster attribute match", []string{"rack", "CLUSTER", "r2"}, r2, []agentPlace{r2}, true},
		{"cluster attribute missing", []string{"rack", "CLUSTER", "r2"}, at("n2"), nil, false},
		{"is match", []string{"zone", "IS", "a"}, at("n1", "zone", "a"), nil, true},
		{"is no match", []string{"zone", "IS", "a"}, at("n1", "zone", "ab"), nil, false},
		{"is scalar", []string{"cores", "IS", "8"}, offerPlace(mesos.Offer{Hostname: "n1", Attributes: []mesos.Attribute{{Name: "cores", Type: "SCALAR", Scalar: &mesos.Scalar{Value: 8}}}}), nil, true},
		{"like alternation", []string{"zone", "LIKE", "a|b"}, at("n1", "zone", "b"), nil, true},
		{"like is a full match", []string{"zone", "LIKE", "a|b"}, at("n1", "zone", "ab"), nil, false},
		{"like missing attribute", []string{"zone", "LIKE", ".*"}, at("n1"), nil, false},
		{"like hostname", []string{"hostname", "LIKE", "n[0-9]+"}, at("n12"), nil, true},
		{"unlike matches", []string{"hostname", "UNLIKE", "bad.*"}, at("bad-1"), nil, false},
		{"unlike no match", []string{"hostname", "UNLIKE", "bad.*"}, at("good-bad"), nil, true},
		{"unlike missing attribute", []string{"zone", "UNLIKE", "a"}, at("n1"), nil, true},
		{"max per under", []string{"rack", "MAX_PER", "2"}, r1, []agentPlace{r1, r2}, true},
		{"max per at limit", []string{"rack", "MAX_PER", "2"}, r1, []agentPlace{r1, r2, r1}, false},
		{"max per hostname", []string{"hostname", "MAX_PER", "1"}, at("n1"), []agentPlace{at("n1")}, false},
		{"group by, none placed", []string{"rack", "GROUP_BY"}, r1, nil, true},
		{"group by, new group", []string{"rack", "GROUP_BY"}, r2, []agentPlace{r1}, true},
		{"group by, bigger group", []string{"rack", "GROUP_BY"}, r1, []agentPlace{r1, r2, r1}, false},
		{"group by, smallest group", []string{"rack", "GROUP_BY"}, r2, []agentPlace{r1, r2, r1}, true},
		{"group by, even groups", []string{"rack", "GROUP_BY"}, r1, []agentPlace{r1, r2}, true},
		{"group by 3, only one group known", []string{"rack", "GROUP_BY", "3"}, r1, []agentPlace{r1}, false},
		{"group by 3, two groups known", []string{"rack", "GROUP_BY", "3"}, r2, []agentPlace{r1, r2}, false},
		{"group by 3, third group", []string{"rack", "GROUP_BY", "3"}, r3, []agentPlace{r1, r2}, true},
		{"group by 3, all known and even", []string{"rack", "GROUP_BY", "3"}, r1, []agentPlace{r1, r2, r3}, true},
		{"group by 3, all known, not smallest", []string{"rack", "GROUP_BY", "3"}, r1, []agentPlace{r1, r2, r3, r1}, false},
		{"group by, missing attribute", []string{"rack", "GROUP_BY"}, at("n9"), nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pc, err := parseConstraint(c.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := meets(pc, c.offer, c.placed); got != c.want {
				t.Fatalf("meets(%v, %+v, %v) = %v, want %v", c.c, c.offer, c.placed, got, c.want)
			}
		})
	}
}

func TestAttributeText(t *testing.T) {
	cases := []struct {
		a    mesos.Attribute
		want string
	}{
		{mesos.Attribute{Name: "rack", Type: "TEXT", Text: &mesos.Text{Value: "r1"}}, "r1"},
		{mesos.Attribute{Name: "n", Type: "SCALAR", Scalar: &mesos.Scalar{Value: 2}}, "2"},
		{mesos.Attribute{Name: "n", Type: "SCALAR", Scalar: &mesos.Scalar{Value: 1.5}}, "1.5"},
		{mesos.Attribute{Name: "n", Type: "SCALAR", Scalar: &mesos.Scalar{Value: 0.12345}}, "0.123"},
		{mesos.Attribute{Name: "n"}, ""},
	}
	for _, c := range cases {
		if got := attributeText(c.a); got != c.want {
			t.Errorf("attributeText(%+v) = %q, want %q", c.a, got, c.want)
		}
	}
}

// TestPlaceConstraints checks that one offer never takes more instances
// than the constraints allow, counting tasks already running and those
// just placed on it, and that the reason is reported.
func TestPlaceConstraints(t *testing.T) {
	res, _ := mesos.ParseResources("cpus:8;mem:8192")
	rack := func(host, r string) mesos.Offer {
		return mesos.Offer{ID: mesos.ID{Value: "o-" + host}, AgentID: mesos.ID{Value: host}, Hostname: host, Resources: res,
			Attributes: []mesos.Attribute{{Name: "rack", Type: "TEXT", Text: &mesos.Text{Value: r}}}}
	}
	cases := []struct {
		name        string
		constraints [][]string
		count       int
		placed      []agentPlace
		offer       mesos.Offer
		want        int
		reason      string
	}{
		{"no constraints", nil, 3, nil, rack("n1", "r1"), 3, ""},
		{"unique hostname: one per offer", [][]string{{"hostname", "UNIQUE"}}, 3, nil, rack("n1", "r1"), 1, ""},
		{"unique hostname: host taken", [][]string{{"hostname", "UNIQUE"}}, 3, []agentPlace{{Host: "n1"}}, rack("n1", "r1"), 0, reasonConstraint},
		{"max per rack 2", [][]string{{"rack", "MAX_PER", "2"}}, 5, []agentPlace{{Host: "n2", Attrs: map[string]string{"rack": "r1"}}}, rack("n1", "r1"), 1, ""},
		{"cluster elsewhere", [][]string{{"hostname", "CLUSTER", "n2"}}, 2, nil, rack("n1", "r1"), 0, reasonConstraint},
		{"like rack", [][]string{{"rack", "LIKE", "r[12]"}}, 2, nil, rack("n1", "r1"), 2, ""},
		{"two constraints", [][]string{{"rack", "LIKE", "r.*"}, {"hostname", "UNIQUE"}}, 2, nil, rack("n1", "r1"), 1, ""},
		{"too big", nil, 1, nil, mesos.Offer{Hostname: "n1", Resources: mesos.Resources{mesos.ScalarResource("cpus", 0.5), mesos.ScalarResource("mem", 4096)}}, 0, reasonCPUs},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := "x"
			app := marathon.App{ID: "/c", Cmd: &cmd, Constraints: c.constraints}
			if err := validate(&app); err != nil {
				t.Fatal(err)
			}
			n := 0
			ls, results := place(c.offer, []need{{App: &app, Count: c.count, Placed: c.placed}}, func(string) string { n++; return "c." + string(rune('a'+n)) })
			if len(ls) != c.want {
				t.Fatalf("placed %d, want %d", len(ls), c.want)
			}
			if len(results) != 1 || results[0].Placed != c.want || results[0].Reason != c.reason {
				t.Fatalf("results %+v, want placed %d reason %q", results, c.want, c.reason)
			}
		})
	}
}

// TestConstraintsOverAPI drives the framework over a real HTTP server: bad
// constraints are refused with Marathon's 422, a UNIQUE app spreads one
// task per host across offers, and an app no offer satisfies waits with
// the reason in /v2/queue.
func TestConstraintsOverAPI(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	m := &fakeMaster{}
	reg := prometheus.NewRegistry()
	f, err := New(ctx, Config{Master: m, Store: &memStore{m: map[string][]byte{}}, Listen: "127.0.0.1:0", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.Handler())
	defer srv.Close()
	do := func(method, path, body string, v any) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil {
			if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
				t.Fatalf("%s %s: decode: %v", method, path, err)
			}
		}
		return resp.StatusCode
	}
	var verr marathon.Error
	code := do("POST", "/v2/apps", `{"id":"/bad","cmd":"x","constraints":[["hostname","UNIQUE"],["rack","NEAR","x"],["zone","LIKE","a("]]}`, &verr)
	if code != 422 || verr.Message != "Object is not valid" || len(verr.Details) != 2 ||
		verr.Details[0].Path != "/constraints(1)" || verr.Details[1].Path != "/constraints(2)" {
		t.Fatalf("bad constraints: %d %+v", code, verr)
	}
	if code := do("POST", "/v2/apps", `{"id":"/u","cmd":"x","instances":2,"cpus":0.1,"mem":16,"constraints":[["hostname","UNIQUE"]]}`, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	verr = marathon.Error{}
	if code := do("PUT", "/v2/apps/u", `{"constraints":[["rack","MAX_PER","zero"]]}`, &verr); code != 422 || verr.Details[0].Path != "/constraints(0)" {
		t.Fatalf("bad update: %d %+v", code, verr)
	}
	verr = marathon.Error{}
	if code := do("PATCH", "/v2/apps/u", `{"constraints":[["hostname","GROUP_BY","x"]]}`, &verr); code != 422 || verr.Details[0].Path != "/constraints(0)" {
		t.Fatalf("bad patch: %d %+v", code, verr)
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventSubscribed, Subscribed: &mesos.Subscribed{FrameworkID: mesos.ID{Value: "FW"}}})
	m.take()
	launched := func() int {
		n := 0
		for _, c := range m.take() {
			if c.Type == mesos.CallAccept {
				n += len(c.Accept.Operations[0].Launch.TaskInfos)
			}
		}
		return n
	}
	// Two offers from the same host in one event: only one task lands.
	o1, o2 := offer("o1"), offer("o2")
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{o1, o2}}})
	if n := launched(); n != 1 {
		t.Fatalf("launched %d on one host, want 1", n)
	}
	var q struct {
		Queue []queued `json:"queue"`
	}
	do("GET", "/v2/queue", "", &q)
	if len(q.Queue) != 1 || q.Queue[0].Count != 1 {
		t.Fatalf("queue: %+v", q)
	}
	sum := q.Queue[0].ProcessedOffersSummary
	if sum.ProcessedOffersCount != 2 || sum.UnusedOffersCount != 1 || sum.LastUsedOfferAt == "" ||
		sum.RejectSummaryLastOffers[0] != (rejectSummary{Reason: reasonConstraint, Declined: 1, Processed: 2}) ||
		sum.RejectSummaryLastOffers[1] != (rejectSummary{Reason: reasonCPUs, Declined: 0, Processed: 1}) {
		t.Fatalf("summary: %+v", sum)
	}
	// A second host takes the second instance.
	o3 := offer("o3")
	o3.AgentID, o3.Hostname = mesos.ID{Value: "A2"}, "h2"
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{o3}}})
	if n := launched(); n != 1 {
		t.Fatalf("second host launched %d, want 1", n)
	}
	do("GET", "/v2/queue", "", &q)
	if len(q.Queue) != 0 {
		t.Fatalf("queue after both placed: %+v", q)
	}
	// Three more instances and no new hosts: they wait, declined for the constraint.
	if code := do("PUT", "/v2/apps/u", `{"instances":5}`, nil); code != 200 {
		t.Fatalf("scale: %d", code)
	}
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{offer("o4")}}})
	if got := types(m.take()); got != "DECLINE" {
		t.Fatalf("offer on a used host: %s", got)
	}
	do("GET", "/v2/queue", "", &q)
	if len(q.Queue) != 1 || q.Queue[0].Count != 3 {
		t.Fatalf("queue: %+v", q)
	}
	sum = q.Queue[0].ProcessedOffersSummary
	if sum.ProcessedOffersCount != 1 || sum.UnusedOffersCount != 1 || sum.RejectSummaryLastOffers[0].Declined != 1 || sum.RejectSummaryLaunchAttempt[0].Declined != 1 {
		t.Fatalf("summary after scale: %+v", sum)
	}
	if got := counterValue(t, reg, "keel_apps_offers_unused_total", "reason", reasonConstraint); got != 2 {
		t.Fatalf("keel_apps_offers_unused_total{reason=UnfulfilledConstraint} = %g, want 2", got)
	}
}

// TestConstraintsSurviveRestart checks that the attributes of a task's
// agent are kept in its record, so a restarted framework still counts it.
func TestConstraintsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	store := &memStore{m: map[string][]byte{}}
	m := &fakeMaster{}
	f, err := New(ctx, Config{Master: m, Store: store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cmd, n := "x", 2
	if _, err := f.CreateApp(ctx, marathon.App{ID: "/r", Cmd: &cmd, Instances: &n, Constraints: [][]string{{"rack", "UNIQUE"}}}); err != nil {
		t.Fatal(err)
	}
	o := offer("o1")
	o.Attributes = []mesos.Attribute{{Name: "rack", Type: "TEXT", Text: &mesos.Text{Value: "r1"}}}
	f.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{o}}})
	if got := types(m.take()); got != "ACCEPT" {
		t.Fatalf("first offer: %s", got)
	}
	f2, err := New(ctx, Config{Master: m, Store: store, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	// Another host on the same rack: refused by the restored task's rack.
	o.ID, o.AgentID, o.Hostname = mesos.ID{Value: "o2"}, mesos.ID{Value: "A2"}, "h2"
	f2.handle(ctx, mesos.Event{Type: mesos.EventOffers, Offers: &mesos.Offers{Offers: []mesos.Offer{o}}})
	if got := types(m.take()); got != "DECLINE" {
		t.Fatalf("same rack after restart: %s", got)
	}
}

// counterValue reads one counter of a registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return 0
}
