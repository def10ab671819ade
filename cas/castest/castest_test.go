package castest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wecampus/wecampus/cas/castest"
)

func TestLoginPage(t *testing.T) {
	s := castest.New(castest.WithLoginHints())
	defer s.Close()
	s.AddUser("20210001", "pw1", "张三", "student")

	evil := `https://x.example/cb?"><script>alert(1)</script>`
	resp, err := http.Get(s.URL() + "/login?renew=true&service=" + url.QueryEscape(evil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Fatalf("login page: status %d, body %s", resp.StatusCode, page)
	}
	if strings.Contains(page, "<script>") {
		t.Error("login page does not escape the service parameter")
	}
	if !strings.Contains(page, "20210001 / pw1") {
		t.Error("WithLoginHints: account list missing")
	}
}

// TestMounted serves the fake under a prefix of another server, as the demo does.
func TestMounted(t *testing.T) {
	s := castest.New(castest.WithTicketTTL(time.Hour))
	defer s.Close()
	s.AddUser("u1", "pw", "王五", "staff")
	mux := http.NewServeMux()
	mux.Handle("/sim/cas/", s.Handler())
	front := httptest.NewServer(mux)
	defer front.Close()

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	service := "https://app.example/bind/cas?step=1"
	resp, err := noFollow.PostForm(front.URL+"/sim/cas/login?renew=true&service="+url.QueryEscape(service),
		url.Values{"username": {"u1"}, "password": {"pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("step") != "1" || !strings.HasPrefix(loc.Query().Get("ticket"), "ST-") {
		t.Fatalf("login: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	validate := func() string {
		q := url.Values{"service": {service}, "ticket": {loc.Query().Get("ticket")}, "renew": {"true"}}
		resp, err := http.Get(front.URL + "/sim/cas/p3/serviceValidate?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := validate(); !strings.Contains(got, "<cas:user>u1</cas:user>") || !strings.Contains(got, "<cas:cn>王五</cas:cn>") ||
		!strings.Contains(got, "<cas:userType>staff</cas:userType>") {
		t.Fatalf("first validation:\n%s", got)
	}
	if got := validate(); !strings.Contains(got, `code="INVALID_TICKET"`) {
		t.Fatalf("second validation of the same ticket:\n%s", got)
	}
	if s.Validations() != 2 {
		t.Errorf("Validations() = %d, want 2", s.Validations())
	}
}
