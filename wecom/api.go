package wecom

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/silenceper/wechat/v2/work/addresslist"

	"github.com/wecampus/wecampus/app"
)

// apiUserCreate is the body of user/create. It has no enable field at all (silenceper's sends
// "enable":0, which creates the member disabled) and always asks WeCom to invite the member.
type apiUserCreate struct {
	UserID     string  `json:"userid"`
	Name       string  `json:"name"`
	Mobile     string  `json:"mobile,omitempty"`
	Department []int64 `json:"department,omitempty"`
	ToInvite   bool    `json:"to_invite"`
}

// apiUserUpdate is the body of user/update: omitted fields are left unchanged by WeCom, so every
// optional field is omitempty and there is no enable field.
type apiUserUpdate struct {
	UserID     string  `json:"userid"`
	NewUserID  string  `json:"new_userid,omitempty"`
	Name       string  `json:"name,omitempty"`
	Mobile     string  `json:"mobile,omitempty"`
	Department []int64 `json:"department,omitempty"`
}

// apiBatchInvite is the body of batch/invite (silenceper's sends null party and tag lists).
type apiBatchInvite struct {
	User []string `json:"user"`
}

// apiJoinQRCodeSize is size_type 2 (399×399) of corp/get_join_qrcode: sharp on a phone screen.
const apiJoinQRCodeSize = "2"

// apiListIDLimit is the largest page of user/list_id.
const apiListIDLimit = 10000

// CreateUser creates a member in WeCom with to_invite true (contacts secret). 60102 means the
// userid exists, 60104 that another member has the mobile. A timeout gives a WeComError with
// Unknown set and is never retried here: read the member to learn the outcome.
//
// @see https://developer.work.weixin.qq.com/document/path/90195
func (c *Client) CreateUser(ctx context.Context, m app.Member) error {
	return c.call(ctx, apiReq{
		op: "user/create", method: http.MethodPost, tok: c.contacts,
		body: apiUserCreate{UserID: m.UserID, Name: m.Name, Mobile: m.Mobile, Department: m.Department, ToInvite: true},
		attrs: []slog.Attr{
			slog.String("userid", m.UserID), slog.String("name", app.MaskName(m.Name)),
			slog.String("mobile", app.MaskMobile(m.Mobile)), slog.Any("department", m.Department),
		},
	}, nil)
}

// UpdateUser changes a member (contacts secret); empty fields are not sent. WeCom ignores a new
// mobile of a member who has joined, and allows NewUserID only once for a system-generated userid
// (301036).
//
// @see https://developer.work.weixin.qq.com/document/path/90197
func (c *Client) UpdateUser(ctx context.Context, u app.MemberUpdate) error {
	return c.call(ctx, apiReq{
		op: "user/update", method: http.MethodPost, tok: c.contacts,
		body: apiUserUpdate{UserID: u.UserID, NewUserID: u.NewUserID, Name: u.Name, Mobile: u.Mobile, Department: u.Department},
		attrs: []slog.Attr{
			slog.String("userid", u.UserID), slog.String("new_userid", u.NewUserID),
			slog.String("name", app.MaskName(u.Name)), slog.String("mobile", app.MaskMobile(u.Mobile)),
		},
	}, nil)
}

// GetUser reads a member with the app token (the member must be in the app's visible range;
// 通讯录同步 reads are refused from IPs added after 2022-08-15). 60111 when there is no such
// member, or it is outside the visible range.
//
// @see https://developer.work.weixin.qq.com/document/path/90196
func (c *Client) GetUser(ctx context.Context, userID string) (*app.Member, error) {
	var res addresslist.UserGetResponse
	err := c.call(ctx, apiReq{
		op: "user/get", method: http.MethodGet, tok: c.app, read: true,
		query: url.Values{"userid": {userID}},
		attrs: []slog.Attr{slog.String("userid", userID)},
	}, &res)
	if err != nil {
		return nil, err
	}
	m := &app.Member{UserID: res.UserID, Name: res.Name, Mobile: res.Mobile, Status: res.Status}
	for _, d := range res.Department {
		m.Department = append(m.Department, int64(d))
	}
	return m, nil
}

// DeleteUser deletes a member (contacts secret); 60111 when there is no such member. Not undoable.
//
// @see https://developer.work.weixin.qq.com/document/path/90198
func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	return c.call(ctx, apiReq{
		op: "user/delete", method: http.MethodGet, tok: c.contacts,
		query: url.Values{"userid": {userID}},
		attrs: []slog.Attr{slog.String("userid", userID)},
	}, nil)
}

// UserIDByMobile returns the userid of the member holding mobile (contacts secret); 46004 when
// nobody does. Misses above 20 % of the corp's size block the API for a day: call it only after a
// 60104, never speculatively. It is not resent after a transport failure (a resend could count a
// second miss).
//
// @see https://developer.work.weixin.qq.com/document/path/95402
func (c *Client) UserIDByMobile(ctx context.Context, mobile string) (string, error) {
	var res addresslist.GetUseridResponse
	err := c.call(ctx, apiReq{
		op: "user/getuserid", method: http.MethodPost, tok: c.contacts,
		body:  addresslist.GetUseridRequest{Mobile: mobile},
		attrs: []slog.Attr{slog.String("mobile", app.MaskMobile(mobile))},
	}, &res)
	if err != nil {
		return "", err
	}
	return res.Userid, nil
}

// Invite (re)sends WeCom's invitation to members who have not joined (contacts secret); members
// who joined are skipped by WeCom. userIDs WeCom reports as invalid give a WeComError with code
// 60111 (app.WeComUserNotFound) naming them.
//
// @see https://developer.work.weixin.qq.com/document/path/90975
func (c *Client) Invite(ctx context.Context, userIDs ...string) error {
	if len(userIDs) == 0 {
		return nil
	}
	var res addresslist.BatchInviteResponse
	err := c.call(ctx, apiReq{
		op: "batch/invite", method: http.MethodPost, tok: c.contacts,
		body:  apiBatchInvite{User: userIDs},
		attrs: []slog.Attr{slog.Any("userids", userIDs)},
	}, &res)
	if err != nil {
		return err
	}
	if len(res.InvalidUser) > 0 {
		return &app.WeComError{Op: "batch/invite", Code: app.WeComUserNotFound, Msg: "invaliduser: " + strings.Join(res.InvalidUser, "|")}
	}
	return nil
}

// JoinQRCode returns the URL of the corp's join QR code image, valid for 7 days (contacts secret).
//
// @see https://developer.work.weixin.qq.com/document/path/91714
func (c *Client) JoinQRCode(ctx context.Context) (string, error) {
	var res addresslist.GetJoinQrcodeResponse
	err := c.call(ctx, apiReq{
		op: "corp/get_join_qrcode", method: http.MethodGet, tok: c.contacts, read: true,
		query: url.Values{"size_type": {apiJoinQRCodeSize}},
	}, &res)
	if err != nil {
		return "", err
	}
	return res.JoinQrcode, nil
}

// ListUserIDs returns every member's userid (contacts secret), following user/list_id's cursor;
// WeCom lists one row per (member, department), the result has each userid once. Each page is
// one call with its own deadline.
//
// @see https://developer.work.weixin.qq.com/document/path/96067
func (c *Client) ListUserIDs(ctx context.Context) ([]string, error) {
	var ids []string
	seen := map[string]bool{}
	cursor := ""
	for page := 1; ; page++ {
		var res addresslist.UserListIDResponse
		err := c.call(ctx, apiReq{
			op: "user/list_id", method: http.MethodPost, tok: c.contacts, read: true,
			body:  addresslist.UserListIDRequest{Cursor: cursor, Limit: apiListIDLimit},
			attrs: []slog.Attr{slog.Int("page", page)},
		}, &res)
		if err != nil {
			return nil, err
		}
		for _, du := range res.DeptUser {
			if du != nil && !seen[du.UserID] {
				seen[du.UserID] = true
				ids = append(ids, du.UserID)
			}
		}
		if res.NextCursor == "" {
			return ids, nil
		}
		if res.NextCursor == cursor {
			return nil, fmt.Errorf("wecom: user/list_id: cursor did not advance after page %d", page)
		}
		cursor = res.NextCursor
	}
}
