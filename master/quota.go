package master

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/keelhq/keel/allocator"
	"github.com/keelhq/keel/api/mesos"
)

// keyQuota prefixes each role's quota in the registry.
const keyQuota = "master/quota/"

// quotaResources turns a config's map of scalars into resources.
func quotaResources(m map[string]mesos.Scalar) mesos.Resources {
	var out mesos.Resources
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, mesos.ScalarResource(n, m[n].Value))
	}
	return out
}

// validateQuota checks one config as Mesos does: a valid, non-"*" role,
// non-negative values, and guarantees no larger than limits.
func validateQuota(c mesos.QuotaConfig) error {
	if err := allocator.ValidRole(c.Role); err != nil {
		return err
	}
	if c.Role == "*" {
		return errors.New(`quota cannot be set for role "*"`)
	}
	for _, m := range []map[string]mesos.Scalar{c.Guarantees, c.Limits} {
		for n, v := range m {
			if v.Value < 0 {
				return fmt.Errorf("role %q: negative quota for %s", c.Role, n)
			}
		}
	}
	for n, g := range c.Guarantees {
		if l, ok := c.Limits[n]; ok && g.Value > l.Value {
			return fmt.Errorf("role %q: guarantee of %s (%g) is above its limit (%g)", c.Role, n, g.Value, l.Value)
		}
	}
	return nil
}

// updateQuota applies UPDATE_QUOTA: all configs are validated first, then
// stored and applied together. A config with no guarantees and no
// limits removes the role's quota. Caller does not hold mu.
func (m *Master) updateQuota(ctx context.Context, u *mesos.UpdateQuota) (int, string) {
	if u == nil || len(u.QuotaConfigs) == 0 {
		return http.StatusBadRequest, "Expecting 'update_quota.quota_configs' to be present"
	}
	for _, c := range u.QuotaConfigs {
		if err := validateQuota(c); err != nil {
			return http.StatusBadRequest, "Invalid 'update_quota.quota_configs': " + err.Error()
		}
	}
	for _, c := range u.QuotaConfigs {
		var err error
		if len(c.Guarantees) == 0 && len(c.Limits) == 0 {
			err = m.cfg.Store.Delete(ctx, keyQuota+c.Role)
		} else {
			b, _ := json.Marshal(c)
			err = m.cfg.Store.Put(ctx, keyQuota+c.Role, b)
		}
		if err != nil {
			return http.StatusServiceUnavailable, "Could not store quota: " + err.Error()
		}
	}
	m.mu.Lock()
	for _, c := range u.QuotaConfigs {
		if len(c.Guarantees) == 0 && len(c.Limits) == 0 {
			delete(m.quota, c.Role)
		} else {
			m.quota[c.Role] = c
		}
	}
	m.mu.Unlock()
	m.log.Info("quota updated", "configs", len(u.QuotaConfigs))
	m.kick()
	return http.StatusOK, ""
}

// getQuota answers GET_QUOTA. Caller holds mu.
func (m *Master) getQuota() *mesos.GetQuota {
	out := &mesos.GetQuota{}
	for _, c := range m.quota {
		out.Status.Configs = append(out.Status.Configs, c)
	}
	sort.Slice(out.Status.Configs, func(i, j int) bool { return out.Status.Configs[i].Role < out.Status.Configs[j].Role })
	return out
}

// allocatorQuota is the quota in the allocator's terms. Caller holds mu.
func (m *Master) allocatorQuota() map[string]allocator.Quota {
	if len(m.quota) == 0 {
		return nil
	}
	out := make(map[string]allocator.Quota, len(m.quota))
	for role, c := range m.quota {
		out[role] = allocator.Quota{Guarantees: quotaResources(c.Guarantees), Limits: quotaResources(c.Limits)}
	}
	return out
}

// recoverQuota loads quota from the registry. Caller holds mu.
func (m *Master) recoverQuota(ctx context.Context) error {
	stored, err := m.cfg.Store.List(ctx, keyQuota)
	if err != nil {
		return fmt.Errorf("master: recover quota: %w", err)
	}
	for key, v := range stored {
		var c mesos.QuotaConfig
		if err := json.Unmarshal(v, &c); err != nil || validateQuota(c) != nil {
			m.log.Warn("skipping unreadable quota record", "key", key, "err", err)
			continue
		}
		m.quota[c.Role] = c
	}
	return nil
}
