package callback

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
//	go test -run='^$' -fuzz=FuzzOpen -fuzztime=3m ./wecom/callback/
//
// Every target checks that no input panics and that every failure wraps exactly one sentinel.

const (
	fuzzTS    = "1700000000"
	fuzzNonce = "1372623149"
)

var sentinels = []error{ErrSignature, ErrStale, ErrMalformed, ErrCorpID}

// checkSentinel fails unless err wraps exactly one of the codec's sentinel errors.
func checkSentinel(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %v wraps %d sentinels", err, n)
	}
}

// fuzzCodec returns the codec of the fuzz targets; its entropy is deterministic so that the
// generated seeds are reproducible.
func fuzzCodec(t testing.TB) *Codec {
	return testCodec(t, 1700000000, WithRand(&patternReader{}))
}

// patternReader yields 0, 1, 2, … forever.
type patternReader struct{ n byte }

func (r *patternReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

// fixtureNames lists the plaintext fixtures used as seeds.
func fixtureNames(tb testing.TB) []string {
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
	c := fuzzCodec(f)
	for _, name := range fixtureNames(f) {
		body, sig, err := c.EncryptEvent(readFixture(f, name), fuzzTS, fuzzNonce)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sig, fuzzTS, fuzzNonce, body, false)
		f.Add("", fuzzTS, fuzzNonce, body, true)
	}
	f.Add(v2Sig, v2TS, v2Nonce, []byte(v2Body), false)
	f.Add("", fuzzTS, fuzzNonce, []byte("<xml><Encrypt><![CDATA[AAAAAAAAAAAAAAAAAAAAAA==]]></Encrypt></xml>"), true)
	f.Add("", fuzzTS, fuzzNonce, []byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml><Encrypt><![CDATA[AAAAAAAAAAAAAAAAAAAAAA==]]></Encrypt></xml>"), true)
	f.Fuzz(func(t *testing.T, sig, ts, nonce string, body []byte, resign bool) {
		if resign {
			if env, err := parseEnvelope(body); err == nil {
				s, _ := signature(nil, c.token, ts, nonce, env.encrypt)
				sig = string(s[:])
			}
		}
		in, err := c.Open(sig, ts, nonce, body, app.ChannelApp)
		if err != nil {
			if in != nil {
				t.Fatal("result with an error")
			}
			checkSentinel(t, err)
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
	c := fuzzCodec(f)
	for _, name := range fixtureNames(f) {
		msg := readFixture(f, name)
		f.Add(rawPlaintext(uint32(len(msg)), string(msg), testCorp))
	}
	f.Add(rawPlaintext(0, "", testCorp))
	f.Add(rawPlaintext(0xFFFFFFFF, "<xml/>", testCorp))
	f.Add([]byte("0123456789abcdef\x00\x00\x00\x01x\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		raw = raw[:len(raw)/16*16]
		if len(raw) == 0 {
			return
		}
		body, sig := sealRaw(t, c, raw, fuzzTS, fuzzNonce)
		in, err := c.Open(sig, fuzzTS, fuzzNonce, body, app.ChannelContacts)
		if err != nil {
			checkSentinel(t, err)
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
	c := fuzzCodec(f)
	f.Add(v1Sig, v1TS, v1Nonce, v1EchoStr, false)
	f.Add("", v1TS, v1Nonce, v1EchoStr, true)
	f.Add("", "1", "2", "AAAAAAAAAAAAAAAAAAAAAA==", true)
	f.Add("", "1", "2", "%%%", true)
	f.Fuzz(func(t *testing.T, sig, ts, nonce, echostr string, resign bool) {
		if resign {
			s, _ := signature(nil, c.token, ts, nonce, echostr)
			sig = string(s[:])
		}
		got, err := c.VerifyURL(sig, ts, nonce, echostr)
		if err != nil {
			if got != nil {
				t.Fatal("result with an error")
			}
			checkSentinel(t, err)
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
	c := fuzzCodec(f)
	body, err := c.Seal(&app.Inbound{FromUser: "u"}, app.Reply{Text: benchReply}, fuzzTS, fuzzNonce)
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
			checkSentinel(t, err)
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed files in testdata/fuzz from the fixtures when
// CB_WRITE_FUZZ_SEEDS=1; otherwise it checks that they are present.
func TestWriteFuzzSeeds(t *testing.T) {
	c := fuzzCodec(t)
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
	for _, name := range fixtureNames(t) {
		plain := readFixture(t, name)
		body, sig, err := c.EncryptEvent(plain, fuzzTS, fuzzNonce)
		if err != nil {
			t.Fatal(err)
		}
		add("FuzzOpen", sig, fuzzTS, fuzzNonce, body, false)
		add("FuzzOpenPlaintext", rawPlaintext(uint32(len(plain)), string(plain), testCorp))
		add("FuzzParseInbound", string(plain))
		if name == "click_help_declaration.xml" { // a declaration on the envelope too
			add("FuzzOpen", sig, fuzzTS, fuzzNonce, append([]byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), body...), false)
		}
	}
	add("FuzzOpen", v2Sig, v2TS, v2Nonce, []byte(v2Body), false)
	add("FuzzVerifyURL", v1Sig, v1TS, v1Nonce, v1EchoStr, false)

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
				t.Errorf("seed %s missing or stale; regenerate with CB_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./wecom/callback/", path)
			}
		}
	}
}
