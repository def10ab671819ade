package callback

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/wecampus/wecampus/app"
)

// Sentinel errors of the callback codec. Every error from VerifyURL, Open and OpenReply wraps
// exactly one of them (test with errors.Is); handlers answer ErrSignature and ErrStale with 403,
// ErrMalformed and ErrCorpID with 400 (CONTRACT §3). Their texts never contain secrets or the
// decrypted content.
var (
	// ErrSignature: msg_signature does not match sha1(sort(token, timestamp, nonce, data)).
	ErrSignature = errors.New("wecom: callback signature mismatch")
	// ErrStale: a POST's timestamp is further from now than the replay window (WithMaxAge).
	ErrStale = errors.New("wecom: callback timestamp outside the allowed window")
	// ErrMalformed: missing or oversize parameters, unparsable XML, bad base64, bad ciphertext
	// length, bad PKCS#7 padding, or a msg_len beyond the plaintext.
	ErrMalformed = errors.New("wecom: malformed callback")
	// ErrCorpID: the receiveid inside the plaintext is not the codec's corp id.
	ErrCorpID = errors.New("wecom: callback receive id is not the corp id")
)

// Limits on callback input. Anything beyond them is ErrMalformed, so an oversized or hostile
// request costs no more than one bounded pass.
const (
	maxBody       = 1 << 20  // POST body, passive-reply envelope, EncryptEvent plaintext
	maxEchoStr    = 4 << 10  // GET echostr (WeCom's is ~90 characters)
	maxTimestamp  = 20       // decimal digits
	maxNonce      = 128      // WeCom's nonces are ~10 digits
	maxField      = 16 << 10 // one field of the decrypted event XML
	maxReplyText  = 2048     // passive text reply Content, bytes (doc 90241)
	poolMaxCap    = 64 << 10 // larger scratch buffers are not kept in the pool
	padBlock      = 32       // WeCom pads to 32 bytes, not to the AES block size (doc 90968)
	headerLen     = 20       // random(16) ‖ msg_len(4)
	defaultMaxAge = 5 * time.Minute

	// replyEnvelopeLen is the fixed markup of appendReplyEnvelope, rounded up.
	replyEnvelopeLen = 160
)

// Codec verifies, decrypts and parses WeCom callbacks and builds encrypted passive replies for
// one callback configuration (corp id, Token, EncodingAESKey), following 加解密方案说明
// https://developer.work.weixin.qq.com/document/path/90968 and 被动回复消息格式
// https://developer.work.weixin.qq.com/document/path/90241. It is safe for concurrent use.
//
// The crypto is implemented here rather than with silenceper's util.DecryptMsg/EncryptMsg: those
// re-derive the AES key and cipher on every call, take the ciphertext as a string (a copy of the
// body), check only the last padding byte, and rely on recover() for bad input; this codec
// expands the key once, decrypts in place in pooled buffers, validates every padding byte and
// every length explicitly, and allocates only the parsed result. The tests check it against
// silenceper's functions and the official vectors.
type Codec struct {
	corpID string
	token  string
	key    [32]byte // AESKey; the IV is key[:16]
	block  cipher.Block

	now        func() time.Time
	rand       io.Reader
	randMu     sync.Mutex // held while reading a caller-supplied rand, which may not be concurrency-safe
	customRand bool
	maxAge     time.Duration

	pool sync.Pool // *scratch
}

// Option configures a Codec.
type Option func(*Codec)

// WithNow sets the clock used for the replay window and the CreateTime of replies (default
// time.Now).
func WithNow(now func() time.Time) Option {
	return func(c *Codec) {
		if now != nil {
			c.now = now
		}
	}
}

// WithRand sets the entropy source for the 16-byte random prefix of encrypted messages and for
// generated nonces (default crypto/rand.Reader). Reads from it are serialised.
func WithRand(r io.Reader) Option {
	return func(c *Codec) {
		if r != nil {
			c.rand = r
			c.customRand = true
		}
	}
}

// WithMaxAge sets the replay window: Open refuses a POST whose timestamp is more than d before or
// after now with ErrStale (default 5m). d <= 0 disables the check. GET verification is exempt.
func WithMaxAge(d time.Duration) Option {
	return func(c *Codec) { c.maxAge = d }
}

// New returns a codec for the callback configured with token and encodingAESKey (the 43
// characters of [A-Za-z0-9] shown in the WeCom console) whose receiveid is corpID.
func New(corpID, token, encodingAESKey string, opts ...Option) (*Codec, error) {
	if corpID == "" {
		return nil, errors.New("wecom: codec: empty corp id")
	}
	if token == "" {
		return nil, errors.New("wecom: codec: empty callback token")
	}
	if len(encodingAESKey) != 43 {
		return nil, fmt.Errorf("wecom: codec: EncodingAESKey must be 43 characters, got %d", len(encodingAESKey))
	}
	for i := 0; i < len(encodingAESKey); i++ {
		if ch := encodingAESKey[i]; !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9') {
			return nil, errors.New("wecom: codec: EncodingAESKey must contain only letters and digits")
		}
	}
	c := &Codec{
		corpID: corpID,
		token:  token,
		now:    time.Now,
		rand:   rand.Reader,
		maxAge: defaultMaxAge,
	}
	n, err := base64.StdEncoding.Decode(c.key[:], []byte(encodingAESKey+"="))
	if err != nil || n != len(c.key) {
		return nil, errors.New("wecom: codec: EncodingAESKey is not valid base64 of a 32-byte key")
	}
	if c.block, err = aes.NewCipher(c.key[:]); err != nil {
		return nil, fmt.Errorf("wecom: codec: %w", err)
	}
	for _, opt := range opts {
		if opt != nil {
			opt(c)
		}
	}
	return c, nil
}

// String describes the codec without its secrets.
func (c *Codec) String() string { return "callback.Codec{corp_id: " + c.corpID + "}" }

// LogValue keeps the token and key out of structured logs.
func (c *Codec) LogValue() slog.Value { return slog.StringValue(c.String()) }

// VerifyURL answers WeCom's URL verification GET (doc 90930): it checks msg_signature over
// (token, timestamp, nonce, echostr) in constant time, decrypts echostr, checks that the receiveid
// is the corp id and returns the plaintext, to be written as the whole response body. The
// parameters are the URL-decoded query values. There is no timestamp window here.
func (c *Codec) VerifyURL(msgSignature, timestamp, nonce, echostr string) ([]byte, error) {
	if err := checkQuery(timestamp, nonce); err != nil {
		return nil, err
	}
	if echostr == "" || len(echostr) > maxEchoStr {
		return nil, fmt.Errorf("%w: echostr missing or longer than %d bytes", ErrMalformed, maxEchoStr)
	}
	sc := c.get()
	defer c.put(sc)
	var ok bool
	if ok, sc.sig = signatureOK(sc.sig, msgSignature, c.token, timestamp, nonce, echostr); !ok {
		return nil, ErrSignature
	}
	msg, err := decrypt(c, sc, echostr)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), msg...), nil
}

// Open handles a callback POST (doc 90930, 90238): it checks the timestamp against the replay
// window (ErrStale), parses the envelope, checks msg_signature over its Encrypt (ErrSignature),
// decrypts, checks the receiveid (ErrCorpID) and parses the event XML into an app.Inbound whose
// Channel is channel. The strings of the result share one copy of the plaintext.
func (c *Codec) Open(msgSignature, timestamp, nonce string, body []byte, channel string) (*app.Inbound, error) {
	if err := checkQuery(timestamp, nonce); err != nil {
		return nil, err
	}
	if err := c.checkFresh(timestamp); err != nil {
		return nil, err
	}
	if len(body) == 0 || len(body) > maxBody {
		return nil, fmt.Errorf("%w: body is empty or longer than %d bytes", ErrMalformed, maxBody)
	}
	env, err := parseEnvelope(body)
	if err != nil {
		return nil, fmt.Errorf("%w: envelope: %w", ErrMalformed, err)
	}
	if len(env.encrypt) == 0 {
		return nil, fmt.Errorf("%w: envelope has no Encrypt", ErrMalformed)
	}
	sc := c.get()
	defer c.put(sc)
	var ok bool
	if ok, sc.sig = signatureOK(sc.sig, msgSignature, c.token, timestamp, nonce, env.encrypt); !ok {
		return nil, ErrSignature
	}
	msg, err := decrypt(c, sc, env.encrypt)
	if err != nil {
		return nil, err
	}
	in, err := parseInbound(string(msg), channel)
	if err != nil {
		return nil, fmt.Errorf("%w: message: %w", ErrMalformed, err)
	}
	return in, nil
}

// Seal builds the encrypted passive reply to in (doc 90241): a text message to in.FromUser from
// the corp, CreateTime now, Content reply.Text, wrapped in the <Encrypt/MsgSignature/TimeStamp/
// Nonce> envelope signed over (token, timestamp, nonce, Encrypt). timestamp and nonce should echo
// the request's; when one is empty or could not be carried verbatim (a timestamp that is not
// decimal digits, a nonce outside printable ASCII, either too long) a fresh one is used. An empty
// reply gives a nil body (answer 200 with an empty body).
func (c *Codec) Seal(in *app.Inbound, reply app.Reply, timestamp, nonce string) ([]byte, error) {
	if reply.Empty() {
		return nil, nil
	}
	if in == nil || in.FromUser == "" {
		return nil, errors.New("wecom: seal: the inbound message has no FromUserName to reply to")
	}
	if len(reply.Text) > maxReplyText {
		return nil, fmt.Errorf("wecom: seal: reply text is %d bytes, WeCom accepts at most %d", len(reply.Text), maxReplyText)
	}
	now := c.now()
	if !echoable(timestamp, maxTimestamp, true) {
		timestamp = strconv.FormatInt(now.Unix(), 10)
	}
	if !echoable(nonce, maxNonce, false) {
		var err error
		if nonce, err = c.nonce(); err != nil {
			return nil, err
		}
	}
	sc := c.get()
	defer c.put(sc)
	if err := c.begin(sc); err != nil {
		return nil, err
	}
	sc.plain = appendReplyXML(sc.plain, in.FromUser, c.corpID, now.Unix(), reply.Text)
	enc := c.encrypt(sc)
	var sig [sigLen]byte
	sig, sc.sig = signature(sc.sig, c.token, timestamp, nonce, enc)
	out := make([]byte, 0, len(enc)+len(sig)+len(timestamp)+len(nonce)+replyEnvelopeLen)
	return appendReplyEnvelope(out, enc, sig[:], timestamp, nonce), nil
}

// EncryptEvent plays WeCom's side for simulators and tests: it encrypts a plaintext event XML into
// a callback POST body (ToUserName, Encrypt, and AgentID when the plaintext has one) and returns
// the msg_signature to send with timestamp and nonce.
func (c *Codec) EncryptEvent(plaintext []byte, timestamp, nonce string) (body []byte, msgSignature string, err error) {
	if timestamp == "" || nonce == "" {
		return nil, "", errors.New("wecom: encrypt event: timestamp and nonce are required")
	}
	if len(plaintext) > maxBody {
		return nil, "", fmt.Errorf("wecom: encrypt event: plaintext longer than %d bytes", maxBody)
	}
	sc := c.get()
	defer c.put(sc)
	if err := c.begin(sc); err != nil {
		return nil, "", err
	}
	sc.plain = append(sc.plain, plaintext...)
	enc := c.encrypt(sc)
	var sig [sigLen]byte
	sig, sc.sig = signature(sc.sig, c.token, timestamp, nonce, enc)

	var agentID string
	if env, err := parseEnvelope(plaintext); err == nil {
		agentID = string(env.agentID)
	}
	body = append(body, "<xml><ToUserName>"...)
	body = appendCDATA(body, c.corpID)
	body = append(body, "</ToUserName><Encrypt><![CDATA["...)
	body = append(body, enc...)
	body = append(body, "]]></Encrypt>"...)
	if agentID != "" {
		body = appendElem(body, "AgentID", agentID)
	}
	body = append(body, "</xml>"...)
	return body, string(sig[:]), nil
}

// EncryptEcho plays WeCom's side of the URL verification: it encrypts plaintext into an echostr
// and returns it with the msg_signature for timestamp and nonce.
func (c *Codec) EncryptEcho(plaintext, timestamp, nonce string) (echostr, msgSignature string, err error) {
	if timestamp == "" || nonce == "" {
		return "", "", errors.New("wecom: encrypt echo: timestamp and nonce are required")
	}
	if len(plaintext) > maxEchoStr {
		return "", "", fmt.Errorf("wecom: encrypt echo: plaintext longer than %d bytes", maxEchoStr)
	}
	sc := c.get()
	defer c.put(sc)
	if err := c.begin(sc); err != nil {
		return "", "", err
	}
	sc.plain = append(sc.plain, plaintext...)
	enc := c.encrypt(sc)
	var sig [sigLen]byte
	sig, sc.sig = signature(sc.sig, c.token, timestamp, nonce, enc)
	return string(enc), string(sig[:]), nil
}

// OpenReply plays WeCom's side of a passive reply: it parses the envelope Seal produced, checks
// its MsgSignature over (token, TimeStamp, Nonce, Encrypt), decrypts it, checks the receiveid
// and returns the reply's plaintext XML. It applies no timestamp window.
func (c *Codec) OpenReply(body []byte) (plaintext []byte, err error) {
	if len(body) == 0 || len(body) > maxBody {
		return nil, fmt.Errorf("%w: reply is empty or longer than %d bytes", ErrMalformed, maxBody)
	}
	env, err := parseEnvelope(body)
	if err != nil {
		return nil, fmt.Errorf("%w: reply envelope: %w", ErrMalformed, err)
	}
	if len(env.encrypt) == 0 || len(env.msgSignature) == 0 {
		return nil, fmt.Errorf("%w: reply envelope lacks Encrypt or MsgSignature", ErrMalformed)
	}
	timestamp, nonce := string(env.timeStamp), string(env.nonce)
	if err := checkQuery(timestamp, nonce); err != nil {
		return nil, err
	}
	sc := c.get()
	defer c.put(sc)
	var ok bool
	if ok, sc.sig = signatureOK(sc.sig, string(env.msgSignature), c.token, timestamp, nonce, env.encrypt); !ok {
		return nil, ErrSignature
	}
	msg, err := decrypt(c, sc, env.encrypt)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), msg...), nil
}

// checkQuery checks the presence and size of the timestamp and nonce query parameters.
func checkQuery(timestamp, nonce string) error {
	if timestamp == "" || len(timestamp) > maxTimestamp {
		return fmt.Errorf("%w: timestamp missing or longer than %d bytes", ErrMalformed, maxTimestamp)
	}
	if nonce == "" || len(nonce) > maxNonce {
		return fmt.Errorf("%w: nonce missing or longer than %d bytes", ErrMalformed, maxNonce)
	}
	return nil
}

// echoable reports whether a request's timestamp (digits) or nonce (printable ASCII) can be
// echoed in a reply envelope and read back byte for byte.
func echoable(s string, maxLen int, digits bool) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; digits && (c < '0' || c > '9') || c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// checkFresh enforces the replay window on a POST's timestamp (unix seconds, decimal).
func (c *Codec) checkFresh(timestamp string) error {
	if c.maxAge <= 0 {
		return nil
	}
	for i := 0; i < len(timestamp); i++ {
		if timestamp[i] < '0' || timestamp[i] > '9' {
			return fmt.Errorf("%w: timestamp is not a decimal number", ErrMalformed)
		}
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp out of range", ErrMalformed)
	}
	// Sub saturates instead of overflowing, so far-off timestamps compare correctly.
	if d := c.now().Sub(time.Unix(ts, 0)); d > c.maxAge || d < -c.maxAge {
		return fmt.Errorf("%w: timestamp %d is %s from the server clock (window %s)", ErrStale, ts, d.Round(time.Second), c.maxAge)
	}
	return nil
}

// scratch holds the per-call buffers and CBC modes; Codec.pool recycles them, so a steady
// stream of callbacks allocates only its results.
type scratch struct {
	plain []byte // random ‖ msg_len ‖ msg ‖ receiveid ‖ padding, encrypted or decrypted in place
	b64   []byte // base64 text
	sig   []byte // signature input
	enc   cipher.BlockMode
	dec   cipher.BlockMode
}

func (c *Codec) get() *scratch {
	if sc, ok := c.pool.Get().(*scratch); ok {
		return sc
	}
	return &scratch{
		enc: cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]),
		dec: cipher.NewCBCDecrypter(c.block, c.key[:aes.BlockSize]),
	}
}

func (c *Codec) put(sc *scratch) {
	if cap(sc.plain) > poolMaxCap {
		sc.plain = nil
	}
	if cap(sc.b64) > poolMaxCap {
		sc.b64 = nil
	}
	if cap(sc.sig) > poolMaxCap {
		sc.sig = nil
	}
	c.pool.Put(sc)
}

// iVSetter is implemented by the standard library's CBC modes; resetting the IV lets a pooled
// mode be reused (after CryptBlocks its IV is the last ciphertext block).
type iVSetter interface{ SetIV([]byte) }

func (c *Codec) encrypter(sc *scratch) cipher.BlockMode {
	if s, ok := sc.enc.(iVSetter); ok {
		s.SetIV(c.key[:aes.BlockSize])
		return sc.enc
	}
	return cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize])
}

func (c *Codec) decrypter(sc *scratch) cipher.BlockMode {
	if s, ok := sc.dec.(iVSetter); ok {
		s.SetIV(c.key[:aes.BlockSize])
		return sc.dec
	}
	return cipher.NewCBCDecrypter(c.block, c.key[:aes.BlockSize])
}

// read fills p from the codec's entropy source.
func (c *Codec) read(p []byte) error {
	if c.customRand {
		c.randMu.Lock()
		defer c.randMu.Unlock()
	}
	if _, err := io.ReadFull(c.rand, p); err != nil {
		return fmt.Errorf("wecom: read random: %w", err)
	}
	return nil
}

// nonce returns a random 10-digit nonce, the form WeCom uses.
func (c *Codec) nonce() (string, error) {
	var b [8]byte
	if err := c.read(b[:]); err != nil {
		return "", err
	}
	return strconv.FormatUint(1_000_000_000+binary.BigEndian.Uint64(b[:])%9_000_000_000, 10), nil
}

// begin starts a plaintext in sc.plain: 16 random bytes and room for msg_len.
func (c *Codec) begin(sc *scratch) error {
	sc.plain = append(sc.plain[:0], make([]byte, headerLen)...)
	return c.read(sc.plain[:16])
}

// encrypt completes the plaintext in sc.plain (header ‖ msg): it fills in msg_len, appends the
// receiveid and the PKCS#7 padding to 32 bytes, encrypts in place with AES-256-CBC (IV = key[:16])
// and returns the base64 text, which stays valid until sc is reused.
func (c *Codec) encrypt(sc *scratch) []byte {
	pt := sc.plain
	binary.BigEndian.PutUint32(pt[16:headerLen], uint32(len(pt)-headerLen)) // callers bound msg to maxBody
	pt = append(pt, c.corpID...)
	pad := padBlock - len(pt)%padBlock
	for i := 0; i < pad; i++ {
		pt = append(pt, byte(pad))
	}
	c.encrypter(sc).CryptBlocks(pt, pt)
	sc.plain = pt
	sc.b64 = base64.StdEncoding.AppendEncode(sc.b64[:0], pt)
	return sc.b64
}

// decrypt base64-decodes and decrypts enc (an Encrypt value or echostr) in sc.plain, checks the
// padding, msg_len and receiveid, and returns the message, a slice of sc.plain.
func decrypt[T text](c *Codec, sc *scratch, enc T) ([]byte, error) {
	if len(enc) == 0 {
		return nil, fmt.Errorf("%w: empty ciphertext", ErrMalformed)
	}
	sc.b64 = append(sc.b64[:0], enc...)
	n := base64.StdEncoding.DecodedLen(len(sc.b64))
	if cap(sc.plain) < n {
		sc.plain = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(sc.plain[:n], sc.b64)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext is not base64: %w", ErrMalformed, err)
	}
	ct := sc.plain[:n]
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes is not a positive multiple of %d", ErrMalformed, len(ct), aes.BlockSize)
	}
	c.decrypter(sc).CryptBlocks(ct, ct)
	pad := int(ct[len(ct)-1])
	if pad < 1 || pad > padBlock || pad > len(ct) {
		return nil, fmt.Errorf("%w: bad padding", ErrMalformed)
	}
	for _, b := range ct[len(ct)-pad:] {
		if int(b) != pad {
			return nil, fmt.Errorf("%w: bad padding", ErrMalformed)
		}
	}
	pt := ct[:len(ct)-pad]
	if len(pt) < headerLen {
		return nil, fmt.Errorf("%w: plaintext of %d bytes is shorter than its header", ErrMalformed, len(pt))
	}
	msgLen := binary.BigEndian.Uint32(pt[16:headerLen])
	if uint64(msgLen) > uint64(len(pt)-headerLen) {
		return nil, fmt.Errorf("%w: msg_len %d beyond the %d-byte plaintext", ErrMalformed, msgLen, len(pt))
	}
	end := headerLen + int(msgLen)
	if string(pt[end:]) != c.corpID {
		return nil, ErrCorpID
	}
	return pt[headerLen:end], nil
}

// envelope holds the fields of an outer callback or reply envelope.
type envelope[T text] struct {
	encrypt, agentID, msgSignature, timeStamp, nonce T
}

// parseEnvelope reads the <xml> envelope of a callback POST (ToUserName, AgentID, Encrypt) or
// of a passive reply (Encrypt, MsgSignature, TimeStamp, Nonce). Other elements are skipped; a
// repeated known element is an error.
func parseEnvelope[T text](src T) (env envelope[T], err error) {
	s := scanner[T]{src: src}
	if err := s.open(); err != nil {
		return env, err
	}
	var seen uint8
	for {
		name, value, nested, ok, err := s.next()
		if err != nil {
			return env, err
		}
		if !ok {
			return env, nil
		}
		var bit uint8
		var dst *T
		switch {
		case string(name) == "Encrypt":
			bit, dst = 1, &env.encrypt
		case string(name) == "AgentID":
			bit, dst = 2, &env.agentID
		case string(name) == "MsgSignature":
			bit, dst = 4, &env.msgSignature
		case string(name) == "TimeStamp":
			bit, dst = 8, &env.timeStamp
		case string(name) == "Nonce":
			bit, dst = 16, &env.nonce
		default:
			continue
		}
		if nested {
			return env, errChildField
		}
		if seen&bit != 0 {
			return env, errDuplicate
		}
		seen |= bit
		*dst = value
	}
}

// appendReplyXML appends the plaintext of a passive text reply (doc 90241).
func appendReplyXML(dst []byte, toUser, fromUser string, createTime int64, content string) []byte {
	dst = append(dst, "<xml><ToUserName>"...)
	dst = appendCDATA(dst, toUser)
	dst = append(dst, "</ToUserName><FromUserName>"...)
	dst = appendCDATA(dst, fromUser)
	dst = append(dst, "</FromUserName><CreateTime>"...)
	dst = strconv.AppendInt(dst, createTime, 10)
	dst = append(dst, "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>"...)
	dst = appendCDATA(dst, content)
	return append(dst, "</Content></xml>"...)
}

// appendReplyEnvelope appends the passive reply envelope (doc 90930):
// <xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>.
func appendReplyEnvelope(dst, enc, sig []byte, timestamp, nonce string) []byte {
	dst = append(dst, "<xml><Encrypt><![CDATA["...)
	dst = append(dst, enc...) // base64: nothing to escape
	dst = append(dst, "]]></Encrypt><MsgSignature><![CDATA["...)
	dst = append(dst, sig...)
	dst = append(dst, "]]></MsgSignature><TimeStamp>"...)
	dst = appendEscaped(dst, timestamp)
	dst = append(dst, "</TimeStamp><Nonce>"...)
	dst = appendCDATA(dst, nonce)
	return append(dst, "</Nonce></xml>"...)
}
