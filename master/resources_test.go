package master_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keelhq/keel/api/mesos"
)

func operator(t *testing.T, url, body string) (int, mesos.OperatorResponse, string) {
	t.Helper()
	resp, err := http.Post(url+"/api/v1", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out mesos.OperatorResponse
	var e struct{ Message string }
	if resp.StatusCode == 200 && resp.ContentLength != 0 {
		json.NewDecoder(resp.Body).Decode(&out)
	} else {
		json.NewDecoder(resp.Body).Decode(&e)
	}
	return resp.StatusCode, out, e.Message
}

// UPDATE_QUOTA validates and stores quota; GET_QUOTA and GET_ROLES show
// it; a role's limit cuts its offers down.
func TestQuota(t *testing.T) {
	url := startMaster(t)
	for _, bad := range []struct{ body, msg string }{
		{`{"type":"UPDATE_QUOTA"}`, "quota_configs"},
		{`{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"*","limits":{"cpus":{"value":1}}}]}}`, `"*"`},
		{`{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"dev","guarantees":{"cpus":{"value":2}},"limits":{"cpus":{"value":1}}}]}}`, "above its limit"},
		{`{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"dev","limits":{"cpus":{"value":-1}}}]}}`, "negative"},
	} {
		if code, _, msg := operator(t, url, bad.body); code != 400 || !strings.Contains(msg, bad.msg) {
			t.Errorf("%s: got %d %q, want 400 with %q", bad.body, code, msg, bad.msg)
		}
	}
	if code, _, msg := operator(t, url, `{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"dev","limits":{"cpus":{"value":1}}}]}}`); code != 200 {
		t.Fatalf("UPDATE_QUOTA: %d %s", code, msg)
	}
	_, q, _ := operator(t, url, `{"type":"GET_QUOTA"}`)
	if q.GetQuota == nil || len(q.GetQuota.Status.Configs) != 1 || q.GetQuota.Status.Configs[0].Limits["cpus"].Value != 1 {
		t.Fatalf("GET_QUOTA: %+v", q.GetQuota)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	connectAgent(t, ctx, url) // cpus:2
	s := subscribeInfo(t, ctx, url, mesos.FrameworkInfo{User: "root", Name: "dev", Roles: []string{"dev"},
		Capabilities: []mesos.FrameworkCapability{{Type: mesos.CapabilityMultiRole}}})
	s.next(t, mesos.EventSubscribed)
	o := s.next(t, mesos.EventOffers).Offers.Offers[0]
	if got := o.Resources.Scalar("cpus"); got != 1 {
		t.Fatalf("offer to a role limited to 1 cpu has %v cpus", got)
	}
	if o.AllocationInfo == nil || o.AllocationInfo.Role != "dev" {
		t.Fatalf("offer allocation_info: %+v", o.AllocationInfo)
	}
	_, roles, _ := operator(t, url, `{"type":"GET_ROLES"}`)
	found := false
	for _, r := range roles.GetRoles.Roles {
		if r.Name == "dev" {
			found = r.Quota != nil && r.Quota.Limits["cpus"].Value == 1 && len(r.Frameworks) == 1
		}
	}
	if !found {
		t.Fatalf("GET_ROLES lacks dev with its quota and framework: %+v", roles.GetRoles)
	}
	// Removing the quota lifts the limit.
	if code, _, _ := operator(t, url, `{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"dev"}]}}`); code != 200 {
		t.Fatal("removing quota failed")
	}
	if _, q, _ := operator(t, url, `{"type":"GET_QUOTA"}`); len(q.GetQuota.Status.Configs) != 0 {
		t.Fatalf("quota left after removal: %+v", q.GetQuota)
	}
}

// RESERVE turns part of an offer into a dynamic reservation of the
// offer's role, usable at once by a LAUNCH in the same ACCEPT, offered
// again only to that role, kept across the agent's re-registration, and
// UNRESERVE gives it back.
func TestReserveUnreserve(t *testing.T) {
	url := startMaster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ag := connectAgent(t, ctx, url)
	s := subscribeInfo(t, ctx, url, mesos.FrameworkInfo{User: "root", Name: "prod", Role: "prod"})
	fid := s.next(t, mesos.EventSubscribed).Subscribed.FrameworkID.Value
	o := s.next(t, mesos.EventOffers).Offers.Offers[0]

	reserved := func(name string, v float64) mesos.Resource {
		r := mesos.ScalarResource(name, v)
		r.Reservations = []mesos.ReservationInfo{{Type: mesos.ReservationDynamic, Role: "prod", Principal: "ops"}}
		r.Role = "prod"
		return r
	}
	refuse := 0.0
	task := mesos.TaskInfo{Name: "db", TaskID: mesos.ID{Value: "db.1"}, AgentID: o.AgentID,
		Resources: mesos.Resources{reserved("cpus", 0.5), reserved("mem", 64)}, Command: &mesos.CommandInfo{Value: "sleep 100"}}
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{o.ID}, Filters: &mesos.Filters{RefuseSeconds: &refuse},
		Operations: []mesos.Operation{
			{Type: mesos.OperationReserve, Reserve: &mesos.Reserve{Resources: mesos.Resources{reserved("cpus", 1), reserved("mem", 128)}}},
			{Type: mesos.OperationLaunch, Launch: &mesos.Launch{TaskInfos: []mesos.TaskInfo{task}}},
		}}}); err != nil {
		t.Fatal(err)
	}
	if l := ag.next(t, "LAUNCH"); l.Launch.Task.TaskID.Value != "db.1" {
		t.Fatalf("launch: %+v", l.Launch)
	}
	ag.update(t, fid, "db.1", mesos.TaskRunning, []byte("0123456789abcdef"))
	s.next(t, mesos.EventUpdate)

	// The rest of the reservation (0.5 cpus, 64 mem) comes back reserved.
	o2 := s.next(t, mesos.EventOffers).Offers.Offers[0]
	if got := o2.Resources.ReservedTo("prod").Scalar("cpus"); got != 0.5 {
		t.Fatalf("re-offer holds %v cpus reserved to prod, want 0.5: %s", got, o2.Resources)
	}
	if got := o2.Resources.Unreserved().Scalar("cpus"); got != 1 {
		t.Fatalf("re-offer holds %v unreserved cpus, want 1: %s", got, o2.Resources)
	}
	// The reservation is in the agent's resources as the operator sees them.
	_, st, _ := operator(t, url, `{"type":"GET_AGENTS"}`)
	if got := st.GetAgents.Agents[0].TotalResources.ReservedTo("prod").Scalar("cpus"); got != 1 {
		t.Fatalf("agent total has %v cpus reserved to prod, want 1", got)
	}

	// UNRESERVE what is free of it.
	if err := s.Call(ctx, mesos.Call{Type: mesos.CallAccept, Accept: &mesos.Accept{OfferIDs: []mesos.ID{o2.ID}, Filters: &mesos.Filters{RefuseSeconds: &refuse},
		Operations: []mesos.Operation{{Type: mesos.OperationUnreserve, Unreserve: &mesos.Unreserve{Resources: mesos.Resources{reserved("cpus", 0.5), reserved("mem", 64)}}}}}}); err != nil {
		t.Fatal(err)
	}
	o3 := s.next(t, mesos.EventOffers).Offers.Offers[0]
	if got := o3.Resources.ReservedTo("prod").Scalar("cpus"); got != 0 {
		t.Fatalf("after UNRESERVE the offer still holds %v reserved cpus: %s", got, o3.Resources)
	}
	_, st, _ = operator(t, url, `{"type":"GET_AGENTS"}`)
	if got := st.GetAgents.Agents[0].TotalResources.ReservedTo("prod").Scalar("cpus"); got != 0.5 {
		t.Fatalf("agent total has %v cpus reserved to prod after UNRESERVE, want 0.5 (the task's)", got)
	}
}
