package wecom

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
)

// BatchDeleteMax is the most userids user/batchdelete takes in one call.
const BatchDeleteMax = 200

// apiBatchDelete is the body of user/batchdelete.
type apiBatchDelete struct {
	UserIDList []string `json:"useridlist"`
}

// DeleteUsers deletes up to BatchDeleteMax members in one call (contacts secret). WeCom applies
// the call all or nothing: a single userid that does not exist fails it with 60111
// (app.WeComUserNotFound) without naming the culprit, and nobody is deleted. Like every write it
// is never resent: a timeout gives a WeComError with Unknown set. Not undoable.
//
// @see https://developer.work.weixin.qq.com/document/path/90199
func (c *Client) DeleteUsers(ctx context.Context, userIDs ...string) error {
	if len(userIDs) == 0 {
		return nil
	}
	if len(userIDs) > BatchDeleteMax {
		return fmt.Errorf("wecom: user/batchdelete: %d userids, at most %d per call", len(userIDs), BatchDeleteMax)
	}
	return c.call(ctx, apiReq{
		op: "user/batchdelete", method: http.MethodPost, tok: c.contacts,
		body:  apiBatchDelete{UserIDList: userIDs},
		attrs: []slog.Attr{slog.Int("count", len(userIDs)), slog.Any("userids", userIDs)},
	}, nil)
}
