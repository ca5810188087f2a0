// minkube-loadgen: one closed-loop load generator for both sides of the etcd comparison (bench/kv-go.ts), so etcd
// driven by its native gRPC client (clientv3) and Minkube driven over keep-alive HTTP face a client of the same cost.
// Each of -clients goroutines sends one request at a time for -warmup then -seconds; the measured window's
// completions and latencies are printed as one JSON line. Built in GOPATH mode against Debian's etcd sources
// (golang-etcd-server-dev): GO111MODULE=off GOPATH=bench/go:/usr/share/gocode go build minkube-loadgen
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"golang.org/x/net/http2"
)

type result struct {
	Target   string  `json:"target"`
	Op       string  `json:"op"`
	Clients  int     `json:"clients"`
	Seconds  float64 `json:"seconds"`
	Ops      int64   `json:"ops"`
	Errors   int64   `json:"errors"`
	OpsPerS  float64 `json:"opsPerSec"`
	P50Ms    float64 `json:"p50Ms"`
	P99Ms    float64 `json:"p99Ms"`
	P999Ms   float64 `json:"p999Ms"`
	FirstErr string  `json:"firstError,omitempty"`
}

type sender func(ctx context.Context, client, i int) error

func tlsConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := ioutil.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func etcdSender(endpoints []string, op string, clients int, value string, cfg *tls.Config) (sender, func(), error) {
	// One clientv3 per 16 goroutines: etcd's clients multiplex many requests on one gRPC connection, as its users do.
	n := (clients + 15) / 16
	cs := make([]*clientv3.Client, n)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: cfg})
		if err != nil {
			return nil, nil, err
		}
		cs[i] = c
	}
	closeAll := func() {
		for _, c := range cs {
			c.Close()
		}
	}
	if op == "get" {
		if _, err := cs[0].Put(context.Background(), "bench-read", value); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	return func(ctx context.Context, client, i int) error {
		c := cs[client%n]
		if op == "get" {
			_, err := c.Get(ctx, "bench-read")
			return err
		}
		_, err := c.Put(ctx, fmt.Sprintf("bench-%d-%d", client, i%64), value)
		return err
	}, closeAll, nil
}

// minkubeSender: with h2, HTTP/2 (over TLS by ALPN, or cleartext with prior knowledge), one client and so one
// connection per 16 goroutines as etcdSender does; else HTTP/1.1 with a keep-alive connection per goroutine.
func minkubeSender(base string, op string, clients int, value, token string, cfg *tls.Config, h2 bool) (sender, func(), error) {
	// HTTP/2: a client, and so a connection, per 16 goroutines, as etcd's side gets. HTTP/1.1: a client per goroutine,
	// each with one connection. One Transport shared by all dialed a new connection whenever a goroutine's next request
	// came before its last connection was back in the pool; over TLS that was a handshake per request or so (6,500
	// connects for 6,263 requests at 256 clients), and the idle connections past the limit were closed again.
	n := clients
	if h2 {
		n = (clients + 15) / 16
	}
	hcs := make([]*http.Client, n)
	closers := make([]func(), n)
	for i := range hcs {
		var rt http.RoundTripper
		switch {
		case h2 && cfg != nil:
			t := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second}
			rt, closers[i] = t, t.CloseIdleConnections
		case h2:
			t := &http2.Transport{AllowHTTP: true, DialTLS: func(network, addr string, _ *tls.Config) (net.Conn, error) { return net.Dial(network, addr) }}
			rt, closers[i] = t, t.CloseIdleConnections
		default:
			t := &http.Transport{MaxIdleConns: 1, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, IdleConnTimeout: 90 * time.Second, TLSClientConfig: cfg}
			rt, closers[i] = t, t.CloseIdleConnections
		}
		hcs[i] = &http.Client{Transport: rt, Timeout: 10 * time.Second}
	}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	body, _ := json.Marshal(map[string]string{"value": value})
	do := func(ctx context.Context, hc *http.Client, method, url string, payload []byte) error {
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, rd)
		if err != nil {
			return err
		}
		if payload != nil {
			req.Header.Set("content-type", "application/json")
		}
		if token != "" {
			req.Header.Set("authorization", "Bearer "+token)
		}
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		b, _ := ioutil.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, strings.TrimSpace(string(b)))
		}
		return nil
	}
	if op == "get" {
		if err := do(context.Background(), hcs[0], "PUT", base+"/v1/kv/bench-read", body); err != nil {
			return nil, nil, err
		}
	}
	return func(ctx context.Context, client, i int) error {
		hc := hcs[client%n]
		if op == "get" {
			return do(ctx, hc, "GET", base+"/v1/kv/bench-read", nil)
		}
		return do(ctx, hc, "PUT", fmt.Sprintf("%s/v1/kv/bench-%d-%d", base, client, i%64), body)
	}, closeAll, nil
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return float64(sorted[i].Microseconds()) / 1000
}

func main() {
	target := flag.String("target", "minkube", "etcd | minkube")
	endpoints := flag.String("endpoints", "", "comma-separated: etcd client URLs, or the Minkube manager's base URL")
	op := flag.String("op", "put", "put | get (etcd: linearizable Get; Minkube: the default linearizable read)")
	clients := flag.Int("clients", 1, "concurrent closed-loop clients")
	seconds := flag.Float64("seconds", 5, "measured seconds")
	warmup := flag.Float64("warmup", 3, "seconds of load before measuring")
	valueBytes := flag.Int("value-bytes", 100, "value size")
	caFile := flag.String("cacert", "", "TLS: the CA to trust (https / TLS when set)")
	certFile := flag.String("cert", "", "TLS: a client certificate")
	keyFile := flag.String("key", "", "TLS: its key")
	token := flag.String("token", "", "Minkube: a bearer token")
	h2 := flag.Bool("h2", false, "Minkube: HTTP/2 (ALPN over TLS, prior knowledge in cleartext), a connection per 16 clients")
	flag.Parse()

	cfg, err := tlsConfig(*caFile, *certFile, *keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls:", err)
		os.Exit(2)
	}
	value := strings.Repeat("v", *valueBytes)
	var send sender
	var closeFn func()
	if *target == "etcd" {
		send, closeFn, err = etcdSender(strings.Split(*endpoints, ","), *op, *clients, value, cfg)
	} else {
		send, closeFn, err = minkubeSender(strings.TrimRight(*endpoints, "/"), *op, *clients, value, *token, cfg, *h2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer closeFn()

	start := time.Now()
	measureFrom := start.Add(time.Duration(*warmup * float64(time.Second)))
	end := measureFrom.Add(time.Duration(*seconds * float64(time.Second)))
	var ops, errs int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ; i++ {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := send(ctx, c, i)
				cancel()
				t1 := time.Now()
				if t0.Before(measureFrom) || t1.After(end) {
					continue
				}
				if err != nil {
					atomic.AddInt64(&errs, 1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				atomic.AddInt64(&ops, 1)
				lat[c] = append(lat[c], t1.Sub(t0))
			}
		}(c)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	r := result{Target: *target, Op: *op, Clients: *clients, Seconds: *seconds, Ops: ops, Errors: errs, OpsPerS: float64(ops) / *seconds,
		P50Ms: percentile(all, 50), P99Ms: percentile(all, 99), P999Ms: percentile(all, 99.9)}
	if v := firstErr.Load(); v != nil {
		r.FirstErr = v.(string)
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
