// Package discovery keeps a pool's targets in step with DNS: a name is
// re-resolved on an interval (A and AAAA records, or SRV records with their
// ports, weights and priorities) and the pool's target set replaced when
// the answer changes, without a config reload. A failed lookup keeps the
// last known targets.
package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gatehouse/internal/lb"
)

// Config is one upstream's discovery.
type Config struct {
	Name     string
	Type     string // "A" (A and AAAA) or "SRV"
	Port     int    // for A
	Interval time.Duration
	Resolver string // DNS server host:port; "" means the system's
}

// Found is one discovered target.
type Found struct {
	Addr   string
	Weight int
	Backup bool
}

// Run resolves cfg every Interval until ctx ends, and calls apply with
// what was found whenever it changes: apply sets the pool's targets (the
// Registry's, so their state survives set changes, made and set under its
// lock, so that it can forget the targets that left at the same time).
// pool names the upstream in events.
func Run(ctx context.Context, pool *lb.Pool, cfg Config, apply func([]Found), events *slog.Logger) {
	r := Resolver(cfg.Resolver)
	var last []Found
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		found, err := Lookup(ctx, r, cfg)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			events.Warn("dns discovery failed; keeping the last targets", "upstream", pool.Name, "name", cfg.Name, "err", err.Error())
		case !slices.Equal(found, last):
			apply(found)
			events.Info("dns discovery: targets changed", "upstream", pool.Name, "name", cfg.Name, "targets", len(found))
			last = found
		}
		t.Reset(cfg.Interval)
	}
}

// Resolver returns a resolver asking server ("host:port"), or the system's
// resolver when server is empty.
func Resolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// Lookup resolves cfg once. The result is sorted, so equal answers compare
// equal whatever order the server gave.
func Lookup(ctx context.Context, r *net.Resolver, cfg Config) ([]Found, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []Found
	if strings.EqualFold(cfg.Type, "SRV") {
		_, srvs, err := r.LookupSRV(ctx, "", "", cfg.Name)
		if err != nil {
			return nil, fmt.Errorf("srv %s: %w", cfg.Name, err)
		}
		if len(srvs) == 0 {
			return nil, fmt.Errorf("srv %s: no records", cfg.Name)
		}
		best := srvs[0].Priority
		for _, s := range srvs {
			best = min(best, s.Priority)
		}
		for _, s := range srvs {
			ips, err := r.LookupNetIP(ctx, "ip", strings.TrimSuffix(s.Target, "."))
			if err != nil {
				return nil, fmt.Errorf("srv %s: target %s: %w", cfg.Name, s.Target, err)
			}
			for _, ip := range ips {
				// Lower priority values are preferred; the rest are backups.
				out = append(out, Found{Addr: addrPort(ip, int(s.Port)), Weight: max(1, min(int(s.Weight), 1000)), Backup: s.Priority != best})
			}
		}
	} else {
		ips, err := r.LookupNetIP(ctx, "ip", cfg.Name)
		if err != nil {
			return nil, fmt.Errorf("lookup %s: %w", cfg.Name, err)
		}
		for _, ip := range ips {
			out = append(out, Found{Addr: addrPort(ip, cfg.Port), Weight: 1})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return slices.Compact(out), nil
}

func addrPort(ip netip.Addr, port int) string {
	return net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(port))
}
