package app

import (
	"context"
	"fmt"
	"strings"
)

// HandleInbound applies one decrypted WeCom callback and returns the passive reply, if any.
//
// Replies (help click, keywords) have no side effects and are answered from memory. Events with
// side effects (subscribe, change_contact) are applied in one transaction together with a durable
// de-duplication record, so a delivery that WeCom retries is applied exactly once. Nothing slow
// happens here: the welcome message goes to the outbox and is sent by RunBackground.
// An error means the effect was not applied and WeCom should retry (the handler answers 503 for
// a dependency failure, 500 for a fault). Inbound.Stored tells the deliveries with effects.
func (s *Service) HandleInbound(ctx context.Context, in *Inbound) (Reply, error) {
	if in.MsgType == "event" && in.Event == "change_contact" {
		return Reply{}, s.applyOnce(ctx, in, s.applyChangeContact)
	}
	if in.Channel == ChannelContacts {
		return Reply{}, nil // only change_contact has effects on the 通讯录同步 event server
	}
	switch {
	case in.MsgType == "text":
		return Reply{Text: s.keywordReply(in.Content)}, nil
	case in.MsgType == "event" && in.Event == "click" && in.EventKey == s.helpKey():
		return Reply{Text: s.helpText()}, nil
	case in.MsgType == "event" && in.Event == "subscribe":
		return Reply{}, s.applyOnce(ctx, in, func(ctx context.Context, tx Store, in *Inbound) error {
			return s.activate(ctx, tx, in.FromUser, "subscribe")
		})
	}
	return Reply{}, nil
}

// applyOnce runs effect in a transaction that also records in's de-duplication key; a delivery
// whose key is already recorded is skipped.
func (s *Service) applyOnce(ctx context.Context, in *Inbound, effect func(context.Context, Store, *Inbound) error) error {
	key := in.DedupKey()
	applied := false
	err := s.Store.Tx(ctx, func(tx Store) error { // may run again (a deadlock victim)
		first, err := tx.MarkInboundSeen(ctx, key, s.now())
		applied = first
		if err != nil || !first {
			return err
		}
		return effect(ctx, tx, in)
	})
	if err != nil {
		return fmt.Errorf("app: apply %s: %w", in.Kind(), err)
	}
	if applied {
		s.wakeOutbox()
	} else {
		s.log().Info("callback retry ignored", "kind", in.Kind(), "key", key)
	}
	return nil
}

func (s *Service) applyChangeContact(ctx context.Context, tx Store, in *Inbound) error {
	switch in.ChangeType {
	case "update_user":
		userID := in.UserID
		if in.NewUserID != "" && !strings.EqualFold(in.NewUserID, in.UserID) {
			if err := s.renameUserID(ctx, tx, in.UserID, in.NewUserID); err != nil {
				return err
			}
			userID = in.NewUserID
		}
		if in.Mobile != "" {
			if err := s.syncMobile(ctx, tx, userID, in.Mobile); err != nil {
				return err
			}
		}
		if in.Status == 1 {
			return s.activate(ctx, tx, userID, "update_user")
		}
		return nil
	case "delete_user":
		b, err := tx.FindLiveBinding(ctx, "userid", in.UserID)
		if ErrorCode(err) == ENOTFOUND {
			return nil
		} else if err != nil {
			return err
		}
		_, err = tx.UpdateBinding(ctx, b.ID, BindingUpdate{
			Status:   Ptr(StatusUnbound),
			Reason:   Ptr("deleted in WeCom"),
			IfStatus: []Status{StatusPending, StatusActive},
		}, Event{Kind: EventUnbound, Actor: ActorWeCom, Detail: "change_contact delete_user"})
		return ignoreConflict(err)
	}
	return nil // create_user and others: members made outside wecampus have no binding
}

// activate turns userID's pending binding active and queues one welcome message. An active,
// unbound or rebound binding stays as it is; a member without a binding is ignored.
func (s *Service) activate(ctx context.Context, tx Store, userID, via string) error {
	b, err := tx.FindLiveBinding(ctx, "userid", userID)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	if b.Status != StatusPending {
		return nil
	}
	b, err = tx.UpdateBinding(ctx, b.ID, BindingUpdate{
		Status:   Ptr(StatusActive),
		IfStatus: []Status{StatusPending},
	}, Event{Kind: EventActivated, Actor: ActorWeCom, Detail: via})
	if ErrorCode(err) == ECONFLICT {
		return nil // activated concurrently by the other report of the same join
	} else if err != nil {
		return err
	}
	return tx.EnqueueMessage(ctx, OutboxMessage{
		DedupKey: fmt.Sprintf("welcome:%d", b.ID),
		ToUser:   b.UserID,
		Content:  s.welcomeText(b),
		NextAt:   s.now(),
	})
}

func (s *Service) renameUserID(ctx context.Context, tx Store, from, to string) error {
	b, err := tx.FindLiveBinding(ctx, "userid", from)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	_, err = tx.UpdateBinding(ctx, b.ID, BindingUpdate{UserID: Ptr(to)},
		Event{Kind: EventUserIDChanged, Actor: ActorWeCom, UserID: to, Detail: "userid " + from + " -> " + to})
	if ErrorCode(err) == ECONFLICT {
		s.log().Warn("userid rename collides with another live binding", "from", from, "to", to)
		return nil
	}
	return err
}

func (s *Service) syncMobile(ctx context.Context, tx Store, userID, mobile string) error {
	b, err := tx.FindLiveBinding(ctx, "userid", userID)
	if ErrorCode(err) == ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	m, ok := NormalizeMobile(mobile)
	if !ok || m == b.Mobile {
		return nil
	}
	_, err = tx.UpdateBinding(ctx, b.ID, BindingUpdate{Mobile: Ptr(m)},
		Event{Kind: EventMobileChanged, Actor: ActorWeCom, Detail: MaskMobile(b.Mobile) + " -> " + MaskMobile(m)})
	if ErrorCode(err) == ECONFLICT {
		s.log().Warn("mobile change collides with another live binding", "userid", userID, "mobile", MaskMobile(m))
		return nil
	}
	return err
}

func ignoreConflict(err error) error {
	if ErrorCode(err) == ECONFLICT {
		return nil
	}
	return err
}

// keywordReply answers a text message (CONTRACT §5, §7): 换绑 / 解绑 / 验证 / 绑定 / 帮助, and
// any other text with the help text. 换绑 is matched before 绑定's relatives, and 解除绑定
// contains 绑定, so unbinding is matched before binding.
func (s *Service) keywordReply(content string) string {
	t := s.replyTexts()
	switch {
	case strings.Contains(content, "换绑"):
		return t.rebind
	case strings.Contains(content, "解绑") || strings.Contains(content, "解除绑定"):
		return t.unbind
	case strings.Contains(content, "验证"):
		return t.verify
	case strings.Contains(content, "绑定"):
		return t.bind
	}
	return t.help
}

func (s *Service) helpText() string { return s.replyTexts().help }

// replyTexts returns the passive reply texts, building them on first use.
func (s *Service) replyTexts() *replyTexts {
	s.textOnce.Do(s.buildTexts)
	return &s.texts
}

// replyTexts are the passive reply texts, built once from BaseURL and HelpContact. Each
// keyword's reply links only its own page; the help text links them all. A link ends its line:
// a chat client's link detection may swallow the characters after it.
type replyTexts struct {
	help, bind, unbind, verify, rebind string
}

// rebindSteps says what a 换绑 is and what happens, in the words of the member pages.
const rebindSteps = "用新学号/工号登录统一身份认证，填写原来绑定的手机号，向该手机号获取验证码后确认换绑：" +
	"原学号/工号的企业微信账号将被删除，新学号/工号用同一个手机号注册，再用同一个微信加入即可。无需先解除绑定，也无需清除微信缓存。"

func (s *Service) buildTexts() {
	help := "微校园助手使用帮助\n" +
		"1. 注册绑定：" + s.link("/bind") + "\n" +
		"2. 关注身份验证（微信绑定的手机号与注册手机号不同时）：" + s.link("/verify") + "\n" +
		"3. 查看我的绑定：" + s.link("/me") + "\n" +
		"4. 更换学号/工号（如预科转本科、本科读研）：用新学号/工号注册绑定，填写原来的手机号即可换绑，无需先解除绑定。\n" +
		"5. 解除绑定（离校或不再使用）：" + s.link("/unbind") + "\n" +
		"回复“绑定”“验证”“换绑”“解绑”可随时获取以上链接。"
	if c := strings.TrimSpace(s.HelpContact); c != "" {
		help += "\n遇到问题请联系：" + c
	}
	s.texts.help = help
	s.texts.rebind = "更换学号/工号（换绑，如预科转本科、本科读研）请点击：" + s.link("/bind") + "\n" + rebindSteps
	s.texts.unbind = "解除绑定请点击：" + s.link("/unbind") + "\n解绑后可立即绑定新的学号/工号，无需清除微信缓存。只是更换学号/工号时无需解绑，回复“换绑”了解。"
	s.texts.verify = "关注身份验证请点击：" + s.link("/verify") + "\n请填写注册时使用的手机号并输入短信验证码。"
	s.texts.bind = "注册绑定请点击：" + s.link("/bind") + "\n使用统一身份认证账号登录后填写手机号即可。"
}

func (s *Service) welcomeText(b *Binding) string {
	return fmt.Sprintf("欢迎加入！你的学号/工号 %s 已完成绑定。\n如需帮助，请点击菜单“使用帮助”或回复“帮助”。", b.Number)
}

func (s *Service) link(path string) string {
	return strings.TrimRight(s.BaseURL, "/") + path
}
