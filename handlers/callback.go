package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/wecom/callback"
)

// callbackHandler serves one WeCom event server: the app's (/wecom/callback) or the 通讯录同步
// one (/wecom/contacts). Each has its own token and key, so a request signed for one channel
// fails the signature check on the other.
//
// The handler has no business logic: query → codec → app.Service.HandleInbound → status. It
// answers 4xx for everything the sender got wrong (WeCom does not retry those usefully), and 503
// (a dependency failed or was too slow) or 500 (a fault) only when the effect was not applied and
// a retry can succeed.
// See https://developer.work.weixin.qq.com/document/path/90930 and …/90968.
type callbackHandler struct {
	s       *Server
	codec   *callback.Codec
	channel string // app.ChannelApp or app.ChannelContacts
	route   string // routeAppCallback or routeContactsCallback
}

var mimeXML = []string{"application/xml; charset=utf-8"}

// handleCallbackVerify handles "GET /wecom/callback" and "GET /wecom/contacts": the URL
// verification WeCom sends when the callback is saved. The decrypted echostr is the whole body.
// The timestamp is not checked for age here (the console may replay an old request).
// See https://developer.work.weixin.qq.com/document/path/90930#验证URL有效性
func (h *callbackHandler) handleCallbackVerify(x *callbackCall) {
	q, ok := parseCallbackQuery(x.r.URL.RawQuery)
	if !ok || q.echostr == "" {
		h.refuse(x, kindVerify, http.StatusBadRequest, resultMalformed, errMissingParam)
		return
	}
	plain, err := h.codec.VerifyURL(q.signature, q.timestamp, q.nonce, q.echostr)
	if err != nil {
		status, result := classifyCodecError(err)
		h.refuse(x, kindVerify, status, result, err)
		return
	}
	x.write(mimeText, plain)
	h.s.metrics.observeCallback(h.channel, kindVerify, resultVerified)
}

// handleCallbackEvent handles "POST /wecom/callback" and "POST /wecom/contacts": one encrypted
// message or event. 200 with an empty body, or with an encrypted passive reply.
// See https://developer.work.weixin.qq.com/document/path/90238 and …/90241.
func (h *callbackHandler) handleCallbackEvent(x *callbackCall) {
	q, ok := parseCallbackQuery(x.r.URL.RawQuery)
	if !ok {
		h.refuse(x, kindUnknown, http.StatusBadRequest, resultMalformed, errMissingParam)
		return
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if status, err := h.readBody(x, buf); err != nil {
		h.refuse(x, kindUnknown, status, resultMalformed, err)
		return
	}

	in, err := h.codec.Open(q.signature, q.timestamp, q.nonce, buf.Bytes(), h.channel)
	if err != nil {
		status, result := classifyCodecError(err)
		h.refuse(x, kindUnknown, status, result, err)
		return
	}
	kind := metricKind(in.Kind())

	var reply app.Reply
	if in.Stored() {
		reply, err = h.apply(x.r.Context(), in)
	} else {
		reply, err = h.s.svc.HandleInbound(x.r.Context(), in) // answered from memory
	}
	if err != nil {
		h.notApplied(x, kind, err)
		return
	}
	if reply.Empty() {
		x.writeStatus(http.StatusOK)
		h.s.metrics.observeCallback(h.channel, kind, resultOK)
		return
	}

	// The envelope echoes the request's timestamp and nonce, as WeCom allows (doc 90241).
	out, err := h.codec.Seal(in, reply, q.timestamp, q.nonce)
	if err != nil {
		// Deterministic (e.g. a reply text over WeCom's limit): a retry would fail the same way,
		// so the delivery is acknowledged without a reply.
		h.logError(x, "seal passive reply", kind, err)
		x.writeStatus(http.StatusOK)
		h.s.metrics.observeCallback(h.channel, kind, resultError)
		return
	}
	x.write(mimeXML, out)
	h.s.metrics.observeCallback(h.channel, kind, resultReply)
}

// callbackBudget is how long a delivery may take before it is answered as not applied: WeCom
// waits 5 s for an answer and then retries, so an effect that cannot be applied in time (a
// database that does not answer) gets a 503 that WeCom still sees.
const callbackBudget = 4 * time.Second

// apply runs HandleInbound for a delivery with effects within callbackBudget. When the budget
// runs out first, the delivery is reported unavailable while the work ends on its own (its
// context is done too): either its transaction commits, and WeCom's retry is then recognised as
// seen, or it rolls back, and the retry applies it. A panic in the work is raised again here,
// with the work's stack, for the route's recovery.
func (h *callbackHandler) apply(ctx context.Context, in *app.Inbound) (app.Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, callbackBudget)
	done := make(chan applied, 1)
	go func() {
		defer cancel()
		defer func() {
			if rec := recover(); rec != nil {
				done <- applied{panicked: fmt.Sprintf("%v\n[in the callback's worker]\n%s", rec, debug.Stack())}
			}
		}()
		r, err := h.s.svc.HandleInbound(ctx, in)
		done <- applied{reply: r, err: err}
	}()
	var r applied
	select {
	case r = <-done:
	case <-ctx.Done():
		select {
		case r = <-done: // finished at the last moment
		default:
			return app.Reply{}, app.Wrap(app.EUNAVAILABLE, context.Cause(ctx), "callback not applied in time")
		}
	}
	if r.panicked != "" {
		panic(r.panicked)
	}
	return r.reply, r.err
}

// applied is the outcome of apply's work.
type applied struct {
	reply    app.Reply
	err      error
	panicked string // the panic and its stack, when the work panicked
}

// notApplied answers a delivery whose effect was not applied, so that WeCom delivers it again:
// the de-dup record was rolled back with the effect, so the retry applies it once. A dependency
// that failed (the database unreachable or too slow) is 503 and a warning; anything else 500 and
// an error. Malformed content (EINVALID) is 400: a retry cannot succeed.
func (h *callbackHandler) notApplied(x *callbackCall, kind string, err error) {
	switch app.ErrorCode(err) {
	case app.EINVALID:
		h.refuse(x, kind, http.StatusBadRequest, resultMalformed, err)
		return
	case app.EUNAVAILABLE:
		h.s.log.LogAttrs(x.r.Context(), slog.LevelWarn, "callback not applied: dependency unavailable",
			slog.String("channel", h.channel), slog.String("kind", kind),
			slog.String("request_id", x.id), slog.Any("err", err))
		x.writeStatus(http.StatusServiceUnavailable)
	default:
		h.logError(x, "callback not applied", kind, err)
		x.writeStatus(http.StatusInternalServerError)
	}
	h.s.metrics.observeCallback(h.channel, kind, resultError)
}

// refuse answers a delivery the sender got wrong with status and an empty body, counts it and
// logs why at warn (no secrets: the codec's errors carry no key material or plaintext).
func (h *callbackHandler) refuse(x *callbackCall, kind string, status int, result string, err error) {
	h.s.log.LogAttrs(x.r.Context(), slog.LevelWarn, "callback refused",
		slog.String("channel", h.channel), slog.String("result", result), slog.Int("status", status),
		slog.String("request_id", x.id), slog.String("err", err.Error()))
	x.writeStatus(status)
	h.s.metrics.observeCallback(h.channel, kind, result)
}

// logError logs a delivery that was decrypted but failed on our side.
func (h *callbackHandler) logError(x *callbackCall, msg, kind string, err error) {
	h.s.log.LogAttrs(x.r.Context(), slog.LevelError, msg,
		slog.String("channel", h.channel), slog.String("kind", kind),
		slog.String("request_id", x.id), slog.Any("err", err))
}

// classifyCodecError maps a codec error to a status and a result label (CONTRACT §3): a bad
// signature or a replayed (stale) timestamp is 403; a wrong corp id and anything malformed is 400.
// An error the codec did not classify is treated as malformed input: never a 5xx, which would
// only make WeCom retry something that cannot succeed.
func classifyCodecError(err error) (int, string) {
	switch {
	case errors.Is(err, callback.ErrSignature):
		return http.StatusForbidden, resultBadSignature
	case errors.Is(err, callback.ErrStale):
		return http.StatusForbidden, resultStale
	case errors.Is(err, callback.ErrCorpID):
		return http.StatusBadRequest, resultWrongCorp
	default:
		return http.StatusBadRequest, resultMalformed
	}
}

var (
	errMissingParam = errors.New("missing, empty, repeated or undecodable query parameter")
	errBodyTooLarge = errors.New("body over the size limit")
	errEmptyBody    = errors.New("empty body")
)

// readBody reads the request body into buf, at most Config.MaxBodyBytes. An oversize body is
// 413; a body that cannot be read (client gone, bad chunking) or is empty is 400.
func (h *callbackHandler) readBody(x *callbackCall, buf *bytes.Buffer) (int, error) {
	limit := h.s.cfg.MaxBodyBytes
	if x.r.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, errBodyTooLarge
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(x.w, x.r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, errBodyTooLarge
		}
		return http.StatusBadRequest, err
	}
	if buf.Len() == 0 {
		return http.StatusBadRequest, errEmptyBody
	}
	return 0, nil
}

// bufferPool recycles body buffers: the codec copies what it keeps out of the body.
var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bufferPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 2*DefaultMaxBodyBytes {
		return // let an unusually large one go rather than pin it
	}
	b.Reset()
	bufferPool.Put(b)
}

// callbackQuery holds the signed query parameters of a callback, URL-decoded.
type callbackQuery struct {
	signature, timestamp, nonce, echostr string
}

// parseCallbackQuery extracts msg_signature, timestamp, nonce and echostr from a raw query
// string without building a url.Values map. It reports false when msg_signature, timestamp or
// nonce is missing or empty, when any of the four is repeated (which value would be signed is
// ambiguous), when one cannot be URL-decoded, or when timestamp is not a plain decimal number.
// Other parameters are ignored. echostr is checked by the GET handler.
func parseCallbackQuery(raw string) (callbackQuery, bool) {
	var q callbackQuery
	var seen uint8
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(kv, "=")
		var dst *string
		var bit uint8
		switch k {
		case "msg_signature":
			dst, bit = &q.signature, 1
		case "timestamp":
			dst, bit = &q.timestamp, 2
		case "nonce":
			dst, bit = &q.nonce, 4
		case "echostr":
			dst, bit = &q.echostr, 8
		default:
			continue
		}
		if seen&bit != 0 {
			return q, false
		}
		seen |= bit
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return q, false
			}
			v = u
		}
		*dst = v
	}
	if q.signature == "" || q.nonce == "" || !isDecimal(q.timestamp) {
		return q, false
	}
	return q, true
}

// isDecimal reports whether s is a plausible unix timestamp: 1 to 20 ASCII digits (the codec's limit).
func isDecimal(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
