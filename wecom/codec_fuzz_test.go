package wecom

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wecampus/wecampus/app"
)

// Fuzz targets for the codec. Seeds come from f.Add below and from testdata/fuzz/<Target>/; run
// for example
//
//	go test -run='^$' -fuzz=FuzzOpen -fuzztime=3m ./wecom/
//
// Every target checks that no input panics and that every failure wraps exactly one sentinel.

const (
	cbFuzzTS    = "1700000000"
	cbFuzzNonce = "1372623149"
)

var cbSentinels = []error{ErrSignature, ErrStale, ErrMalformed, ErrCorpID}

// cbCheckSentinel fails unless err wraps exactly one of the codec's sentinel errors.
func cbCheckSentinel(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range cbSentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %v wraps %d sentinels", err, n)
	}
}

// cbFuzzCodec returns the codec of the fuzz targets; its entropy is deterministic so that the
// generated seeds are reproducible.
func cbFuzzCodec(t testing.TB) *Codec {
	return cbTestCodec(t, 1700000000, WithRand(&cbPatternReader{}))
}

// cbPatternReader yields 0, 1, 2, … forever.
type cbPatternReader struct{ n byte }

func (r *cbPatternReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// cbFixtureNames lists the plaintext fixtures used as seeds.
func cbFixtureNames(tb testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil || len(files) == 0 {
		tb.Fatal(files, err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	return files
}

// FuzzOpen feeds Open arbitrary query parameters and bodies. With resign set, the harness signs
// the body's Encrypt correctly first, so that the fuzzer gets past the signature into base64,
// AES, padding, layout and XML.
func FuzzOpen(f *testing.F) {
	c := cbFuzzCodec(f)
	for _, name := range cbFixtureNames(f) {
		body, sig, err := c.EncryptEvent(cbReadFixture(f, name), cbFuzzTS, cbFuzzNonce)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sig, cbFuzzTS, cbFuzzNonce, body, false)
		f.Add("", cbFuzzTS, cbFuzzNonce, body, true)
	}
	f.Add(cbV2Sig, cbV2TS, cbV2Nonce, []byte(cbV2Body), false)
	f.Add("", cbFuzzTS, cbFuzzNonce, []byte("<xml><Encrypt><![CDATA[AAAAAAAAAAAAAAAAAAAAAA==]]></Encrypt></xml>"), true)
	f.Fuzz(func(t *testing.T, sig, ts, nonce string, body []byte, resign bool) {
		if resign {
			if env, err := cbParseEnvelope(body); err == nil {
				s, _ := cbSignature(nil, c.token, ts, nonce, env.encrypt)
				sig = string(s[:])
			}
		}
		in, err := c.Open(sig, ts, nonce, body, app.ChannelApp)
		if err != nil {
			if in != nil {
				t.Fatal("result with an error")
			}
			cbCheckSentinel(t, err)
			return
		}
		if in == nil || in.MsgType == "" || in.Channel != app.ChannelApp {
			t.Fatalf("bad result %+v", in)
		}
		// Whatever was accepted can be answered.
		reply, err := c.Seal(&app.Inbound{FromUser: "u"}, app.Reply{Text: in.Content + "x"}, ts, nonce)
		if err == nil {
			if _, err := c.OpenReply(reply); err != nil {
				t.Fatalf("own reply: %v", err)
			}
		}
	})
}

// FuzzOpenPlaintext encrypts and signs an arbitrary decrypted buffer (random ‖ msg_len ‖ msg ‖
// receiveid ‖ padding, cut to whole AES blocks), so that every length, padding and receiveid
// check and the XML parser see hostile input behind a valid signature.
func FuzzOpenPlaintext(f *testing.F) {
	c := cbFuzzCodec(f)
	for _, name := range cbFixtureNames(f) {
		msg := cbReadFixture(f, name)
		f.Add(cbRawPlaintext(uint32(len(msg)), string(msg), cbTestCorp))
	}
	f.Add(cbRawPlaintext(0, "", cbTestCorp))
	f.Add(cbRawPlaintext(0xFFFFFFFF, "<xml/>", cbTestCorp))
	f.Add([]byte("0123456789abcdef\x00\x00\x00\x01x\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = raw[:len(raw)/16*16]
		if len(raw) == 0 {
			return
		}
		body, sig := cbSealRaw(t, c, raw, cbFuzzTS, cbFuzzNonce)
		in, err := c.Open(sig, cbFuzzTS, cbFuzzNonce, body, app.ChannelContacts)
		if err != nil {
			cbCheckSentinel(t, err)
			if errors.Is(err, ErrSignature) || errors.Is(err, ErrStale) {
				t.Fatalf("signed input refused as %v", err)
			}
			return
		}
		if in.MsgType == "" || in.Channel != app.ChannelContacts {
			t.Fatalf("bad result %+v", in)
		}
	})
}

// FuzzVerifyURL is FuzzOpen for the GET verification.
func FuzzVerifyURL(f *testing.F) {
	c := cbFuzzCodec(f)
	f.Add(cbV1Sig, cbV1TS, cbV1Nonce, cbV1EchoStr, false)
	f.Add("", cbV1TS, cbV1Nonce, cbV1EchoStr, true)
	f.Add("", "1", "2", "AAAAAAAAAAAAAAAAAAAAAA==", true)
	f.Add("", "1", "2", "%%%", true)
	f.Fuzz(func(t *testing.T, sig, ts, nonce, echostr string, resign bool) {
		if resign {
			s, _ := cbSignature(nil, c.token, ts, nonce, echostr)
			sig = string(s[:])
		}
		got, err := c.VerifyURL(sig, ts, nonce, echostr)
		if err != nil {
			if got != nil {
				t.Fatal("result with an error")
			}
			cbCheckSentinel(t, err)
			return
		}
		// Only a correctly signed, correctly encrypted echostr passes: re-encrypting the result
		// must verify too.
		echo, s, err := c.EncryptEcho(string(got), ts, nonce)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := c.VerifyURL(s, ts, nonce, echo); err != nil || string(again) != string(got) {
			t.Fatalf("round trip: %q, %v", again, err)
		}
	})
}

// FuzzOpenReply checks the simulator-side reply parser the same way.
func FuzzOpenReply(f *testing.F) {
	c := cbFuzzCodec(f)
	body, err := c.Seal(&app.Inbound{FromUser: "u"}, app.Reply{Text: cbBenchReply}, cbFuzzTS, cbFuzzNonce)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add([]byte("<xml><Encrypt>x</Encrypt><MsgSignature>y</MsgSignature><TimeStamp>1</TimeStamp><Nonce>2</Nonce></xml>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := c.OpenReply(body)
		if err != nil {
			if got != nil {
				t.Fatal("result with an error")
			}
			cbCheckSentinel(t, err)
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed files in testdata/fuzz from the fixtures when
// CB_WRITE_FUZZ_SEEDS=1; otherwise it checks that they are present.
func TestWriteFuzzSeeds(t *testing.T) {
	c := cbFuzzCodec(t)
	seeds := map[string][]string{} // target → corpus file contents
	add := func(target string, values ...any) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			switch v := v.(type) {
			case string:
				fmt.Fprintf(&b, "string(%q)\n", v)
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			}
		}
		seeds[target] = append(seeds[target], b.String())
	}
	for _, name := range cbFixtureNames(t) {
		plain := cbReadFixture(t, name)
		body, sig, err := c.EncryptEvent(plain, cbFuzzTS, cbFuzzNonce)
		if err != nil {
			t.Fatal(err)
		}
		add("FuzzOpen", sig, cbFuzzTS, cbFuzzNonce, body, false)
		add("FuzzOpenPlaintext", cbRawPlaintext(uint32(len(plain)), string(plain), cbTestCorp))
		add("FuzzParseInbound", string(plain))
	}
	add("FuzzOpen", cbV2Sig, cbV2TS, cbV2Nonce, []byte(cbV2Body), false)
	add("FuzzVerifyURL", cbV1Sig, cbV1TS, cbV1Nonce, cbV1EchoStr, false)

	write := os.Getenv("CB_WRITE_FUZZ_SEEDS") == "1"
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		for _, content := range files {
			sum := sha256.Sum256([]byte(content))
			path := filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8]))
			if write {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got, err := os.ReadFile(path); err != nil || string(got) != content {
				t.Errorf("seed %s missing or stale; regenerate with CB_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./wecom/", path)
			}
		}
	}
}
