package approvals

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Limiter is a token bucket per remote address for failed authentications:
// each address may fail burst times, then once per interval. Memory is
// bounded: at most maxAddrs buckets; when full, buckets that have refilled
// (and so say nothing) are dropped, and addresses that still find no room
// share one overflow bucket, so flooding from many addresses throttles the
// flood rather than evicting the record of an attacker.
type Limiter struct {
	mu       sync.Mutex
	burst    float64
	perSec   float64
	maxAddrs int
	now      func() time.Time
	buckets  map[string]*bucket
	overflow bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter allowing burst failures per address, refilled
// one per interval, tracking at most maxAddrs addresses. now is the clock
// (time.Now when nil).
func NewLimiter(burst int, interval time.Duration, maxAddrs int, now func() time.Time) *Limiter {
	if burst < 1 {
		burst = 1
	}
	if interval <= 0 {
		interval = time.Second
	}
	if maxAddrs < 1 {
		maxAddrs = 1
	}
	if now == nil {
		now = time.Now
	}
	l := &Limiter{
		burst: float64(burst), perSec: 1 / interval.Seconds(), maxAddrs: maxAddrs, now: now,
		buckets: make(map[string]*bucket),
	}
	l.overflow = bucket{tokens: l.burst, last: now()}
	return l
}

// Allow reports whether remote may try to authenticate now: it has at
// least one failure left. It consumes nothing.
func (l *Limiter) Allow(remote string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.lookup(addrKey(remote), false)
	if b == nil {
		return true
	}
	l.refill(b)
	return b.tokens >= 1
}

// Fail records one failed authentication from remote.
func (l *Limiter) Fail(remote string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.lookup(addrKey(remote), true)
	l.refill(b)
	if b.tokens >= 1 {
		b.tokens--
	} else {
		b.tokens = 0
	}
}

// Len returns how many addresses have a bucket.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// lookup finds key's bucket; with create, it makes one (or hands out the
// overflow bucket when there is no room). Without create, an address with
// no bucket of its own is judged by the overflow bucket once the table is
// full, so it cannot escape the flood limit by never having failed before.
func (l *Limiter) lookup(key string, create bool) *bucket {
	if b, ok := l.buckets[key]; ok {
		return b
	}
	if len(l.buckets) < l.maxAddrs {
		if !create {
			return nil
		}
		b := &bucket{tokens: l.burst, last: l.now()}
		l.buckets[key] = b
		return b
	}
	l.sweep()
	if len(l.buckets) < l.maxAddrs {
		if !create {
			return nil
		}
		b := &bucket{tokens: l.burst, last: l.now()}
		l.buckets[key] = b
		return b
	}
	return &l.overflow
}

// sweep drops buckets that have refilled completely.
func (l *Limiter) sweep() {
	for k, b := range l.buckets {
		l.refill(b)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

func (l *Limiter) refill(b *bucket) {
	now := l.now()
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.perSec)
	}
	b.last = now
}

// addrKey reduces a remote address ("ip:port" or "ip") to the unit that is
// limited: the IPv4 address, or the IPv6 /64 (one host usually holds a
// whole /64). Anything else is used as is, bounded in length.
func addrKey(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		if len(host) > 64 {
			host = host[:64]
		}
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}
