package handlers

import (
	"strconv"

	"github.com/wecampus/wecampus/app"
)

// personView is the view of admin_person.html.
type personView struct {
	Number       string
	Live         *bindingRowView
	Member       memberView
	Intent       *intentView
	IntentStale  bool
	CanInvite    bool
	Operator     bool
	History      []bindingRowView
	SMS          []smsView
	Events       []eventView
	EventsCapped bool
}

// memberView is the WeCom member as read now.
type memberView struct {
	UserID, Text, Mobile string
	Tone                 string // live | bad | ""
}

type smsView struct {
	At, Mobile, Purpose, State, Requester string
}

type eventView struct {
	At, Kind, KindText, Actor, Detail string
}

// personEventsShown is how many events the person page shows (app's cap).
const personEventsShown = 200

func personViewOf(p *app.PersonFile, a *app.Admin) *personView {
	v := &personView{Number: p.Number, History: bindingRowsOf(p.Bindings), Member: memberViewOf(p.Member),
		IntentStale: p.IntentStale, Operator: a.CanAct(), EventsCapped: len(p.Events) >= personEventsShown}
	if p.Live != nil {
		r := bindingRowOf(p.Live)
		v.Live = &r
		v.CanInvite = p.Live.Status == app.StatusPending
	}
	if p.Intent != nil {
		v.Intent = intentViewOf(p.Intent)
	}
	for _, c := range p.SMS {
		v.SMS = append(v.SMS, smsViewOf(c))
	}
	for _, ev := range p.Events {
		v.Events = append(v.Events, eventView{At: consoleTime(ev.CreatedAt), Kind: ev.Kind, KindText: eventKindText[ev.Kind],
			Actor: actorText[ev.Actor], Detail: ev.Detail})
	}
	return v
}

// memberStatusText are WeCom's member statuses (user/get).
var memberStatusText = map[int]string{1: "已激活（已加入）", 2: "已禁用", 4: "未激活（尚未加入）", 5: "已退出企业"}

func memberViewOf(st app.WeComMemberState) memberView {
	v := memberView{UserID: st.UserID}
	switch {
	case st.UserID == "":
		v.Text = "没有对应的企业微信成员"
	case st.Unavailable:
		v.Text, v.Tone = "暂时无法读取（企业微信无响应），请稍后刷新", "bad"
	case st.Gone:
		v.Text = "企业微信中不存在该成员"
	case st.Member != nil:
		v.Text = memberStatusText[st.Member.Status]
		if v.Text == "" {
			v.Text = "状态 " + strconv.Itoa(st.Member.Status)
		}
		if st.Member.Status == 1 {
			v.Tone = "live"
		} else if st.Member.Status == 2 || st.Member.Status == 5 {
			v.Tone = "bad"
		}
		v.Mobile = app.MaskMobile(st.Member.Mobile)
	}
	return v
}

var purposeText = map[app.Purpose]string{
	app.PurposeVerify: "加入验证",
	app.PurposeUnbind: "解除绑定",
	app.PurposeRebind: "换绑",
}

func smsViewOf(c *app.SMSCode) smsView {
	v := smsView{At: consoleTime(c.CreatedAt), Mobile: app.MaskMobile(c.Mobile), Purpose: purposeText[c.Purpose]}
	if v.Purpose == "" {
		v.Purpose = string(c.Purpose)
	}
	switch {
	case c.UsedAt != nil:
		v.State = "已使用"
	case c.Attempts > 0:
		v.State = "未通过（尝试 " + strconv.Itoa(c.Attempts) + " 次）"
	default:
		v.State = "未使用"
	}
	if c.Requester != "" {
		v.Requester = "学号/工号 " + app.MaskNumber(c.Requester)
	}
	if ip := maskIP(c.IP); ip != "" {
		if v.Requester != "" {
			v.Requester += " · "
		}
		v.Requester += "IP " + ip
	}
	return v
}

var actorText = map[string]string{
	app.ActorMember: "本人", app.ActorAdmin: "管理员", app.ActorWeCom: "企业微信", app.ActorSystem: "系统",
}

var eventKindText = map[string]string{
	app.EventBindIntent:    "准备写入企业微信",
	app.EventBound:         "注册绑定",
	app.EventActivated:     "加入企业微信",
	app.EventUnbound:       "解除绑定",
	app.EventRebound:       "换绑",
	app.EventUserIDChanged: "userid 变更",
	app.EventMobileChanged: "手机号变更",
	app.EventRepaired:      "自动修复",
	app.EventWelcomeSent:   "欢迎消息",
	app.EventPurged:        "个人信息已清除",
	app.EventRebindCode:    "换绑验证码",
	app.EventOffboarding:   "批量离校",
	app.EventAdminSignIn:   "登录控制台",
	app.EventAdminSignOut:  "退出控制台",
	app.EventAdminView:     "查看详情",
	app.EventAdminInvite:   "重新邀请",
	app.EventAdminRepair:   "修复办理记录",
	app.EventAdminExport:   "导出",
	app.EventAdminFailed:   "操作失败",
}
