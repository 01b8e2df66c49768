package depcheck
import (
	_ "github.com/valyala/fasthttp"
	_ "github.com/miekg/dns"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/testutil"
	_ "go.etcd.io/bbolt"
	_ "gopkg.in/yaml.v3"
	_ "golang.org/x/sync/errgroup"
	"testing"
)
func TestX(t *testing.T){}
