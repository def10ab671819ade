// Package wecom is wecampus's adapter to WeCom (企业微信)'s HTTPS JSON API: the only package that
// imports silenceper/wechat.
//
// Client implements app.WeCom with the two access tokens (app secret and 通讯录同步 secret).
// Several replicas share the tokens and the 2FA concurrency cap through a TokenStore and a
// Semaphore (WithTokenStore, WithSemaphore; package redis implements both).
// The other direction, WeCom's encrypted callbacks to /wecom/callback and /wecom/contacts, is
// wecom/callback; the two share nothing but the subject, so neither imports the other.
// wecom/wecomtest is an in-process simulator of the API for tests and `wecampus demo`.
package wecom
