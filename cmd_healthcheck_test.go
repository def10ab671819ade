package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = w.Write([]byte("ok\nredis: degraded"))
		} else {
			_, _ = w.Write([]byte("not ready"))
		}
	}))
	defer srv.Close()

	r := runCLI(t, "healthcheck", "--url", srv.URL+"/readyz")
	if r.code != 0 || r.stdout != "ok: ok redis: degraded\n" {
		t.Errorf("ready: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	status = http.StatusServiceUnavailable
	r = runCLI(t, "healthcheck", "--url", srv.URL+"/readyz")
	if r.code != 1 || !strings.Contains(r.stderr, "answered 503: not ready") {
		t.Errorf("not ready: exit %d, stderr %q", r.code, r.stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r = runCLI(t, "healthcheck", "--url", "http://"+addr+"/readyz")
	if r.code != 1 || !strings.Contains(r.stderr, "wecampus: healthcheck: ") {
		t.Errorf("nothing listening: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "healthcheck", "--url", "::bad"); r.code != 2 {
		t.Errorf("bad --url: exit %d, stderr %q", r.code, r.stderr)
	}
}
