package wecom

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work/message"

	"github.com/wecampus/wecampus/app"
)

// apiTextMessage is the body of a text message/send. agentid is an integer as the doc types it
// (silenceper's SendRequestCommon sends a string).
type apiTextMessage struct {
	ToUser  string     `json:"touser"`
	MsgType string     `json:"msgtype"`
	AgentID int64      `json:"agentid"`
	Text    apiTextMsg `json:"text"`
	// EnableDuplicateCheck (0/1) makes WeCom drop a message identical to one sent within
	// DuplicateCheckInterval seconds (default 1800, at most 4 h).
	EnableDuplicateCheck   int   `json:"enable_duplicate_check,omitempty"`
	DuplicateCheckInterval int64 `json:"duplicate_check_interval,omitempty"`
}

// maxDuplicateCheck is the longest duplicate_check_interval WeCom accepts.
const maxDuplicateCheck = 4 * time.Hour

type apiTextMsg struct {
	Content string `json:"content"`
}

// apiMenu is the body of menu/create and the answer of menu/get (silenceper has no menu API for
// work; this follows its style: CommonError embedded, doc links on the methods).
type apiMenu struct {
	util.CommonError
	Button []app.MenuButton `json:"button"`
}

// apiMenuNotSet is menu/get's errcode when the app has no menu.
const apiMenuNotSet = 46003

// SendText sends a text app message (app secret) to toUser ("id1|id2" or "@all"). Content is cut
// by WeCom at 2048 bytes. The call is never resent here (a resend could deliver twice); messages
// beyond 30 per member per minute are dropped by WeCom without an error. With dedup > 0 the
// duplicate check is on: WeCom drops a message identical to one it accepted within dedup (capped
// at 4 h), so that a caller resending after an unknown outcome delivers it once.
//
// @see https://developer.work.weixin.qq.com/document/path/90236
func (c *Client) SendText(ctx context.Context, toUser, content string, dedup time.Duration) error {
	body := apiTextMessage{ToUser: toUser, MsgType: "text", AgentID: c.cfg.AgentID, Text: apiTextMsg{Content: content}}
	if dedup > 0 {
		body.EnableDuplicateCheck = 1
		body.DuplicateCheckInterval = int64(min(dedup, maxDuplicateCheck) / time.Second)
	}
	var res message.SendResponse
	err := c.call(ctx, apiReq{
		op: "message/send", method: http.MethodPost, tok: c.app, body: body,
		attrs: []slog.Attr{slog.String("touser", toUser), slog.Int("bytes", len(content))},
	}, &res)
	if err != nil {
		return err
	}
	if res.InvalidUser != "" || res.UnlicensedUser != "" {
		// Partly delivered: WeCom sent to the valid recipients and names the others.
		c.log.WarnContext(ctx, "wecom: message/send: some recipients invalid",
			"invaliduser", res.InvalidUser, "unlicenseduser", res.UnlicensedUser)
	}
	return nil
}

// CreateMenu sets the app's menu (app secret): 1–3 buttons with up to 5 sub-buttons each.
//
// @see https://developer.work.weixin.qq.com/document/path/90231
func (c *Client) CreateMenu(ctx context.Context, buttons []app.MenuButton) error {
	return c.call(ctx, apiReq{
		op: "menu/create", method: http.MethodPost, tok: c.app,
		query: c.agentQuery(), body: apiMenu{Button: buttons},
	}, nil)
}

// GetMenu returns the app's menu (app secret); no menu set gives an empty menu, not an error.
//
// @see https://developer.work.weixin.qq.com/document/path/90232
func (c *Client) GetMenu(ctx context.Context) ([]app.MenuButton, error) {
	var res apiMenu
	err := c.call(ctx, apiReq{
		op: "menu/get", method: http.MethodGet, tok: c.app, read: true,
		query: c.agentQuery(),
	}, &res)
	if app.WeComCode(err) == apiMenuNotSet {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return res.Button, nil
}

// DeleteMenu removes the app's menu (app secret).
//
// @see https://developer.work.weixin.qq.com/document/path/90233
func (c *Client) DeleteMenu(ctx context.Context) error {
	return c.call(ctx, apiReq{
		op: "menu/delete", method: http.MethodGet, tok: c.app,
		query: c.agentQuery(),
	}, nil)
}

func (c *Client) agentQuery() url.Values {
	return url.Values{"agentid": {strconv.FormatInt(c.cfg.AgentID, 10)}}
}
