package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/wecampus/wecampus/app"
	"github.com/wecampus/wecampus/cas/castest"
	"github.com/wecampus/wecampus/handlers/demo"
	"github.com/wecampus/wecampus/sms"
	"github.com/wecampus/wecampus/wecom/wecomtest"
)

// defaultDemoAddr is where `wecampus demo` listens unless --addr says otherwise (CONTRACT §1).
const defaultDemoAddr = "127.0.0.1:8080"

// Paths the demo mounts its simulators at, on the service's own listener.
const (
	demoWeComPath = "/demo/wecom" // wecom.api_base = base_url + this
	demoCASPath   = "/demo/cas"   // cas.base_url = base_url + this
)

// demoCorpID is the simulated corp; every secret of the demo is random per run.
const demoCorpID = "wwdemo0123456789"

// demoAdmin is the demo's helpdesk operator (admin.operators): a WeCom member who has joined,
// offered first when /admin asks who signs in.
var demoAdmin = wecomtest.Member{UserID: "helpdesk", Name: "服务台", Mobile: "13900009999", Department: []int64{1}, Status: 1}

// demoPassword is the CAS password of every test identity.
const demoPassword = "demo123"

// demoIdentities are the test persons of the demo's CAS fake: students who bind, verify and
// unbind, a staff member, an alumnus the identity rules refuse, and one person with two numbers
// (预科 → 本科) and the same name, for 换绑.
var demoIdentities = []demo.Identity{
	{Number: "2021000101", Password: demoPassword, Name: "张三", Type: "student", Mobile: "13800000101", Note: "注册后点“加入企业微信”即完成(手机号与微信一致)"},
	{Number: "2021000102", Password: demoPassword, Name: "李四", Type: "student", Mobile: "13800000102", Note: "注册后点“身份验证”:手机号与微信不一致时的关注身份验证"},
	{Number: "2021000103", Password: demoPassword, Name: "王芳", Type: "student", Mobile: "13800000103", Note: "注册、加入后用菜单“解除绑定”"},
	{Number: "T2008001", Password: demoPassword, Name: "陈静", Type: "staff", Mobile: "13900000201", Note: "教职工"},
	{Number: "2010000001", Password: demoPassword, Name: "赵毅", Type: "alumni", Mobile: "13700000301", Note: "校友:身份规则不允许注册,登录后看到拒绝页面"},
	{Number: "2020000401", Password: demoPassword, Name: "刘洋", Type: "student", Mobile: "13600000401", Note: "预科学号:先用它注册绑定"},
	{Number: "2024000401", Password: demoPassword, Name: "刘洋", Type: "student", Mobile: "13600000401", Note: "同一人的本科新学号:填写原手机号,体验换绑"},
}

func (c *cli) demoCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "run the whole system locally: SQLite, in-process WeCom and CAS simulators, SMS codes in the log",
		Long: `demo runs the real service with an embedded SQLite database in a temporary folder, an
in-process WeCom simulator (/demo/wecom), a CAS fake (/demo/cas) and SMS codes written to the log,
all on one listener. It needs no config file (--config is ignored). Open the printed URL: the
console at /demo plays the person, WeCom and the SMS gateway. Stop it with Ctrl+C.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := startDemo(ctx, addr, c.stderr)
			if err != nil {
				return err
			}
			defer d.close()
			if c.demoShutdown > 0 {
				d.cfg.Server.ShutdownTimeout = c.demoShutdown
			}
			go func() { // stop delivering callbacks as soon as the stop begins
				<-ctx.Done()
				d.console.Close()
			}()
			if err := d.printBanner(c.stdout); err != nil {
				return err
			}
			return c.serveOn(ctx, d.cfg, d.log, d.ln, d.handler, d.deps.svc, true)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", defaultDemoAddr, "listen address; the service's base_url is http://ADDR")
	return cmd
}

// demoWorld is a running demo: the service and everything around it.
type demoWorld struct {
	cfg     *Config
	log     *slog.Logger
	ln      net.Listener
	base    string
	dataDir string

	sim     *wecomtest.Server
	cas     *castest.Server
	sms     *sms.Log // the service's SMS provider, behind the console's recorder: the codes it "sent"
	console *demo.Console
	deps    *deps
	handler http.Handler // the service at /, the simulators and the console under /demo
}

// startDemo listens on addr, builds the demo's config, simulators, service and console, and
// returns the world ready to serve. Logs go to logOut.
func startDemo(ctx context.Context, addr string, logOut io.Writer) (_ *demoWorld, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--addr: %w", err)
	}
	d := &demoWorld{ln: ln, base: demoBaseURL(ln.Addr())}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.dataDir, err = os.MkdirTemp("", "wecampus-demo-"); err != nil {
		return nil, fmt.Errorf("demo data folder: %w", err)
	}
	// The simulators listen on the service's own origin: the config points WeCom and CAS there.
	d.cfg = demoConfig(d.base, ln.Addr().String(), filepath.Join(d.dataDir, "demo.db"))
	if err := d.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	d.log = newLogger(d.cfg.Log, logOut)

	w := d.cfg.WeCom
	d.sim = wecomtest.New(w.CorpID, wecomtest.WithAppSecret(w.AppSecret.Reveal()),
		wecomtest.WithContactsSecret(w.ContactsSecret.Reveal()), wecomtest.WithAgentID(w.AgentID))
	d.cas = castest.New(castest.WithLoginHints(), castest.WithLogger(d.log))
	d.sms = sms.NewLog(d.log)
	codes := demo.NewSMSRecorder(d.sms)
	if d.deps, err = build(ctx, d.cfg, d.log, withServing(), withSMS(codes)); err != nil {
		return nil, err
	}
	if d.console, err = d.newConsole(codes); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle(demoWeComPath+"/", d.sim.Handler())
	mux.Handle(demoCASPath+"/", d.cas.Handler())
	mux.Handle(demo.ConsolePath, d.console.Handler())
	mux.Handle(demo.ConsolePath+"/", d.console.Handler())
	mux.Handle("/", d.deps.handler)
	d.handler = mux
	return d, nil
}

// newConsole builds the console: it plays WeCom's side of the two callbacks with the same corp
// id, tokens and keys as the service's codecs.
func (d *demoWorld) newConsole(codes *demo.SMSRecorder) (*demo.Console, error) {
	w := d.cfg.WeCom
	menu, err := app.AppMenu(d.base, w.HelpKey, nil)
	if err != nil {
		return nil, err
	}
	appSide, contactsSide, err := newCodecs(w)
	if err != nil {
		return nil, err
	}
	return demo.New(demo.Config{
		BaseURL:       d.base,
		DataDir:       d.dataDir,
		Service:       d.deps.svc,
		WeCom:         d.sim,
		CAS:           d.cas,
		SMS:           codes,
		Identities:    demoIdentities,
		Menu:          menu,
		AppCodec:      appSide,
		ContactsCodec: contactsSide,
		AgentID:       w.AgentID,
		CorpID:        w.CorpID,
		Admin:         demoAdmin,
		Log:           d.log,
	})
}

// close releases everything startDemo built; the data folder is deleted.
func (d *demoWorld) close() {
	if d.console != nil {
		d.console.Close()
	}
	if d.deps != nil {
		d.deps.close()
	}
	if d.cas != nil {
		d.cas.Close()
	}
	if d.sim != nil {
		d.sim.Close()
	}
	_ = d.ln.Close() // usually closed already by the server's shutdown
	if d.dataDir != "" {
		if err := os.RemoveAll(d.dataDir); err != nil {
			d.logger().Warn("remove demo data folder", "dir", d.dataDir, "err", err)
		}
	}
}

func (d *demoWorld) logger() *slog.Logger {
	if d.log != nil {
		return d.log
	}
	return slog.Default()
}

// printBanner tells the person what to open and where things are.
func (d *demoWorld) printBanner(w io.Writer) error {
	_, err := fmt.Fprintf(w, `微校园助手演示环境已启动(wecampus demo)

  请在浏览器中打开: %[1]s/demo
  注册页:           %[1]s/bind
  管理控制台:       %[1]s/admin(以演示操作员 %[6]s 登录)
  数据:             %[2]s(SQLite,临时目录,停止后删除)
  短信验证码:       不会真的发送;写在日志(标准错误输出)中,也显示在控制台的“短信验证码”里
  企业微信、统一身份认证: 进程内模拟器 %[1]s%[3]s 、%[1]s%[4]s(测试账号密码均为 %[5]s)

按 Ctrl+C 停止。
`, d.base, filepath.Join(d.dataDir, "demo.db"), demoWeComPath, demoCASPath, demoPassword, demoAdmin.UserID)
	return err
}

// demoBaseURL is http://host:port of the listener; an unspecified host (":8080") becomes
// 127.0.0.1, the address a browser on this machine uses.
func demoBaseURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// demoConfig is the demo's configuration, built in code: random secrets, SQLite at dbPath, the
// simulators on the service's own origin, SMS codes in the log, the default identity rules.
func demoConfig(base, addr, dbPath string) *Config {
	return &Config{
		Server: ServerConfig{
			Addr:           addr,
			BaseURL:        base,
			SessionSecret:  Secret(randomAlnum(48)),
			TrustedProxies: []string{},
			// Short: a browser's unused preconnected sockets would otherwise hold the stop for
			// 5 s (net/http treats a silent new connection as busy that long); they are cut.
			ShutdownTimeout: 2 * time.Second,
			HelpContact:     "信息化管理中心（演示）电话 0000-0000000",
			RateLimit:       RateLimit{PerMinute: 300},
		},
		Database: DatabaseConfig{Driver: "sqlite", DSN: Secret(dbPath)},
		Log:      LogConfig{Level: "info", Format: "text"},
		WeCom: WeComConfig{
			CorpID:                 demoCorpID,
			AgentID:                wecomtest.DefaultAgentID,
			AppSecret:              Secret(randomAlnum(32)),
			ContactsSecret:         Secret(randomAlnum(32)),
			CallbackToken:          Secret(randomAlnum(24)),
			CallbackAESKey:         Secret(randomAlnum(43)),
			ContactsCallbackToken:  Secret(randomAlnum(24)),
			ContactsCallbackAESKey: Secret(randomAlnum(43)),
			CallbackMaxAge:         5 * time.Minute,
			APIBase:                base + demoWeComPath,
			OAuthBase:              base + demo.OAuthBasePath,
			LoginBase:              base + demo.OAuthBasePath,
			VerifyMode:             "tfa",
			Timeout:                5 * time.Second,
			HelpKey:                "HELP",
		},
		CAS: CASConfig{
			BaseURL:    base + demoCASPath,
			Protocol:   3,
			Attributes: CASAttributes{Name: "cn", Type: "userType"},
			Timeout:    5 * time.Second,
		},
		Identity: IdentityConfig{
			UserID: "{{.Number}}",
			Rules: []IdentityRule{
				{Type: "student", Number: "^[0-9]{8,12}$", Department: 2, Label: "学生"},
				{Type: "staff", Department: 3, Label: "教职工"},
			},
		},
		Admin: AdminConfig{Operators: []string{demoAdmin.UserID}},
		SMS: SMSConfig{
			Provider:    "log",
			AllowLog:    true,
			CodeTTL:     5 * time.Minute,
			Cooldown:    60 * time.Second,
			DailyLimit:  10,
			MaxAttempts: 5,
			// Everyone in the demo shares 127.0.0.1: the per-IP limit is raised accordingly.
			IPLimit:           1000,
			IPWindow:          time.Hour,
			MigrateDailyLimit: 3,
		},
		Retention: RetentionConfig{UnboundAfter: 365 * 24 * time.Hour, SMSAfter: 30 * 24 * time.Hour},
	}
}

// randomAlnum returns n random letters and digits (crypto/rand, without modulo bias).
func randomAlnum(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		_, _ = rand.Read(buf) // crypto/rand.Read never fails (Go ≥ 1.24)
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
