// Package callback is the codec of WeCom (企业微信)'s encrypted callbacks: those of the app
// (/wecom/callback) and of the 通讯录同步 event server (/wecom/contacts). Codec does the URL
// verification, the signature and replay checks, AES-256-CBC decryption, the event XML and the
// encrypted passive replies (加解密方案说明, https://developer.work.weixin.qq.com/document/path/90968).
// It also plays WeCom's side (EncryptEvent, EncryptEcho, OpenReply, EventXML) for simulators and
// tests.
//
// It lives apart from package wecom (the API client) because it is the inbound half: the HTTP
// adapter in handlers calls it on every callback, and it needs none of the client's tokens,
// transport or silenceper. It imports only app and the standard library.
//
// The hot path (Open + Seal) avoids encoding/xml: WeCom's XML is flat, and a strict scanner over
// it (xml.go) is several times faster and allocates only the result.
package callback
