package handlers_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/callback"
)

// clickHelpDelivery returns an encrypted HELP click: the request target and the body.
func clickHelpDelivery(b *testing.B, e *env) (target string, body []byte) {
	b.Helper()
	now := time.Now().Unix()
	ts := strconv.FormatInt(now, 10)
	plain := callback.EventXML(&app.Inbound{ToUser: testCorpID, FromUser: "2021123456", CreateTime: now,
		MsgType: "event", Event: "click", EventKey: "HELP", AgentID: "1000002"})
	body, sig, err := e.wecomApp.EncryptEvent(plain, ts, "1372623149")
	if err != nil {
		b.Fatal(err)
	}
	return "/wecom/callback?msg_signature=" + sig + "&timestamp=" + ts + "&nonce=1372623149", body
}

// BenchmarkCallbackClickReply is one encrypted HELP click POST answered with an encrypted passive
// reply through the whole gin handler at serve's log level (info; successful callbacks are
// logged at debug): routing, request id, access log check, metrics, query parsing, body read, codec, app.Service, codec. The
// request is built once (net/http's parsing is not ours to measure) and gets a fresh body each
// time; the recorder is new each time. Compare with wecom/callback's BenchmarkCodecClickReply, the
// codec's share of the same work (with a shorter reply text than the real help text).
func BenchmarkCallbackClickReply(b *testing.B) {
	e := newEnv(b, withLogOutput(io.Discard), withLogLevel(slog.LevelInfo))
	target, body := clickHelpDelivery(b, e)
	req := httptest.NewRequest(http.MethodPost, target, nil)
	rd := bytes.NewReader(body)
	req.Body = io.NopCloser(rd)
	req.ContentLength = int64(len(body))

	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rd.Reset(body)
		w := httptest.NewRecorder()
		e.handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Body.Len() == 0 {
			b.Fatalf("status %d, body %d bytes", w.Code, w.Body.Len())
		}
	}
}

// BenchmarkCallbackClickReplyNewRequest is BenchmarkCallbackClickReply with the request parsed
// by httptest.NewRequest every time, as a server would.
func BenchmarkCallbackClickReplyNewRequest(b *testing.B) {
	e := newEnv(b, withLogOutput(io.Discard), withLogLevel(slog.LevelInfo))
	target, body := clickHelpDelivery(b, e)

	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		w := httptest.NewRecorder()
		e.handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Body.Len() == 0 {
			b.Fatalf("status %d, body %d bytes", w.Code, w.Body.Len())
		}
	}
}

// BenchmarkHealthz is the floor of every request: routing, request id, access log, metrics,
// recovery and the recorder, around a handler that only writes "ok".
func BenchmarkHealthz(b *testing.B) {
	e := newEnv(b, withLogOutput(io.Discard), withLogLevel(slog.LevelInfo))
	req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkCodecSameWork is the work of BenchmarkCallbackClickReply without HTTP: verify,
// decrypt and parse the same delivery, ask app.Service for the reply (the real help text), build
// and encrypt the reply. The ratio of the two is the cost of the HTTP layer.
func BenchmarkCodecSameWork(b *testing.B) {
	e := newEnv(b, withLogOutput(io.Discard), withLogLevel(slog.LevelInfo))
	target, body := clickHelpDelivery(b, e)
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	sig, ts, nonce := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce")
	codec := mustCodec(b, testCorpID, testAppToken, testAppKey, callback.WithMaxAge(5*time.Minute))
	ctx := context.Background()

	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		in, err := codec.Open(sig, ts, nonce, body, app.ChannelApp)
		if err != nil {
			b.Fatal(err)
		}
		reply, err := e.svc.HandleInbound(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		out, err := codec.Seal(in, reply, ts, nonce)
		if err != nil || len(out) == 0 {
			b.Fatalf("seal: %v", err)
		}
	}
}
