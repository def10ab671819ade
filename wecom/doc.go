// Package wecom is wecampus's adapter to WeCom (企业微信): the only package that speaks WeCom's
// wire formats.
//
// It has two halves. The API client (Client) implements app.WeCom over WeCom's HTTPS JSON API
// with the two access tokens (app secret and 通讯录同步 secret). The callback codec (Codec)
// handles the encrypted callbacks of the app (/wecom/callback) and of the 通讯录同步 event server
// (/wecom/contacts): URL verification, signature and replay checks, AES-256-CBC decryption, the
// event XML, and encrypted passive replies (加解密方案说明,
// https://developer.work.weixin.qq.com/document/path/90968).
//
// The codec's hot path (Open + Seal) avoids encoding/xml: WeCom's XML is flat, and a strict
// scanner over it (xml.go) is several times faster and allocates only the result.
package wecom
