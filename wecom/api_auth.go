package wecom

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/silenceper/wechat/v2/work/oauth"
)

// UserFromCode redeems an OAuth code (app secret): a member gives userID, a visitor who is not a
// member gives openID. Codes work once, for 5 minutes (40029); the call is never resent.
//
// @see https://developer.work.weixin.qq.com/document/path/91023
func (c *Client) UserFromCode(ctx context.Context, code string) (userID, openID string, err error) {
	var res oauth.GetUserInfoResponse
	err = c.call(ctx, apiReq{
		op: "auth/getuserinfo", method: http.MethodGet, tok: c.app,
		query: url.Values{"code": {code}},
	}, &res)
	if err != nil {
		return "", "", err
	}
	return res.UserID, res.OpenID, nil
}

// TfaInfo redeems the code WeCom appends to the join-verification page (contacts secret) for the
// member's userid and the tfa_code that TfaSucc needs. Both work once, for 5 minutes (40029).
//
// @see https://developer.work.weixin.qq.com/document/path/99499
func (c *Client) TfaInfo(ctx context.Context, code string) (userID, tfaCode string, err error) {
	var res oauth.GetTfaInfoResponse
	err = c.call(ctx, apiReq{
		op: "auth/get_tfa_info", method: http.MethodPost, tok: c.contacts,
		body: oauth.GetTfaInfoRequest{Code: code},
	}, &res)
	if err != nil {
		return "", "", err
	}
	return res.UserID, res.TfaCode, nil
}

// TfaSucc lets a member through join verification (contacts secret) with the tfa_code from
// TfaInfo.
//
// @see https://developer.work.weixin.qq.com/document/path/99500
func (c *Client) TfaSucc(ctx context.Context, userID, tfaCode string) error {
	return c.call(ctx, apiReq{
		op: "user/tfa_succ", method: http.MethodPost, tok: c.contacts,
		body:  oauth.TfaSuccRequest{UserID: userID, TfaCode: tfaCode},
		attrs: []slog.Attr{slog.String("userid", userID)},
	}, nil)
}

// AuthSucc lets a member who joins for the first time through the legacy 登录二次验证
// (contacts secret).
//
// @see https://developer.work.weixin.qq.com/document/path/99521
func (c *Client) AuthSucc(ctx context.Context, userID string) error {
	return c.call(ctx, apiReq{
		op: "user/authsucc", method: http.MethodGet, tok: c.contacts,
		query: url.Values{"userid": {userID}},
		attrs: []slog.Attr{slog.String("userid", userID)},
	}, nil)
}
