package master

import (
	"reflect"
	"testing"

	"github.com/keelhq/keel/api/mesos"
)

// Each setter of an agent's resources drops the cached available(), so
// that it is total - used - offered after any sequence of changes, and
// asking again without a change gives the cached value itself.
func TestAvailableCache(t *testing.T) {
	res := func(s string) mesos.Resources {
		t.Helper()
		rs, err := mesos.ParseResources(s)
		if err != nil {
			t.Fatal(err)
		}
		return rs.Normalize()
	}
	a := &agentRec{total: res("cpus:4;mem:1024;ports:[31000-31009]")}
	check := func(step, want string) {
		t.Helper()
		got := a.available()
		if fresh := a.total.Minus(a.used).Minus(a.offered); !reflect.DeepEqual(got, fresh) || got.String() != want {
			t.Fatalf("%s: available %q, afresh %q, want %q", step, got.String(), fresh.String(), want)
		}
		if again := a.available(); len(again) > 0 && &again[0] != &got[0] {
			t.Fatalf("%s: computed again without a change", step)
		}
	}
	check("new", "cpus:4;mem:1024;ports:[31000-31009]")
	a.setUsed(a.used.Plus(res("cpus:1;mem:100;ports:[31000-31001]")))
	check("launch", "cpus:3;mem:924;ports:[31002-31009]")
	a.setOffered(a.offered.Plus(res("cpus:3;mem:924;ports:[31002-31009]")))
	check("offer", "")
	a.setOffered(a.offered.Minus(res("cpus:3;mem:924;ports:[31002-31009]")))
	check("offer back", "cpus:3;mem:924;ports:[31002-31009]")
	a.setTotal(res("cpus:8;mem:2048;ports:[31000-31009]"))
	check("total grows", "cpus:7;mem:1948;ports:[31002-31009]")
	a.setUsed(a.used.Minus(res("cpus:1;mem:100;ports:[31000-31001]")))
	check("task ends", "cpus:8;mem:2048;ports:[31000-31009]")
	a.setUsed(res("cpus:0.5;mem:10"))
	check("re-registered", "cpus:7.5;mem:2038;ports:[31000-31009]")
}
