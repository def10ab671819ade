package main

// The deployment files in deploy/ and the Dockerfile cannot run here (no container runtime), so
// these tests parse them and check the facts that matter: replicas, probes, grace periods, the
// disruption budget, healthchecks, the config wiring, and that every metric the alerts and the
// dashboard use exists in a real /metrics scrape of the service.

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Facts the deploy files and the binary share.
const (
	imageBinary    = "/usr/local/bin/wecampus" // the Dockerfile's ENTRYPOINT
	configInImage  = "/etc/wecampus/config.yaml"
	graceMargin    = 5 * time.Second // beyond preStop + server.shutdown_timeout
	k8sAppLabel    = "app.kubernetes.io/name"
	composeService = "wecampus"
)

func readDeployFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeYAML(t *testing.T, name string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readDeployFile(t, name), v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// goVersion is go.mod's go line.
func goVersion(t *testing.T) string {
	t.Helper()
	for line := range strings.Lines(string(readDeployFile(t, "go.mod"))) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return v
		}
	}
	t.Fatal("go.mod has no go line")
	return ""
}

// TestDockerfileOffline: no frontend image is pulled, GOPROXY is a build argument, the Go image
// is pinned to go.mod's version, the toolchain is never downloaded, and the container health
// check needs no shell.
func TestDockerfileOffline(t *testing.T) {
	t.Parallel()
	df := string(readDeployFile(t, "Dockerfile"))
	var froms []string
	args := map[string]bool{}
	for line := range strings.Lines(df) {
		line = strings.TrimSpace(line)
		if regexp.MustCompile(`(?i)^#\s*syntax\s*=`).MatchString(line) {
			t.Errorf("a %q line makes the builder pull a frontend image", line)
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			froms = append(froms, fields[1])
		case "ARG":
			name, _, _ := strings.Cut(fields[1], "=")
			args[name] = true
		}
	}
	if len(froms) != 2 {
		t.Fatalf("FROM lines %q, want the build and the runtime stage", froms)
	}
	if want := "golang:" + goVersion(t) + "-"; !strings.HasPrefix(froms[0], want) {
		t.Errorf("build image %s, want %s… (go.mod's go version, pinned)", froms[0], want)
	}
	for _, img := range froms {
		_, tag, tagged := strings.Cut(path.Base(img), ":")
		if (!tagged || tag == "latest") && !strings.Contains(img, "@sha256:") {
			t.Errorf("image %s is not pinned by tag or digest", img)
		}
	}
	if !args["GOPROXY"] || !strings.Contains(df, "GOPROXY=${GOPROXY}") {
		t.Error("GOPROXY is not a build argument passed to the go build")
	}
	for _, want := range []string{"GOTOOLCHAIN=local", `ENTRYPOINT ["` + imageBinary + `"]`,
		`CMD ["` + imageBinary + `", "healthcheck"]`, configInImage} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %s", want)
		}
	}
	readme := string(readDeployFile(t, "README.md"))
	for _, want := range []string{"--build-arg GOPROXY=", "go mod vendor", "golang:" + goVersion(t)} {
		if !strings.Contains(readme, want) {
			t.Errorf("README does not explain the offline build (%s)", want)
		}
	}
}

// composeFile is the part of deploy/docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Deploy      struct {
			Replicas int `yaml:"replicas"`
		} `yaml:"deploy"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		Secrets         []any          `yaml:"secrets"`
		Volumes         []string       `yaml:"volumes"`
		Networks        any            `yaml:"networks"`
		DependsOn       map[string]any `yaml:"depends_on"`
		StopGracePeriod string         `yaml:"stop_grace_period"`
		ReadOnly        bool           `yaml:"read_only"`
	} `yaml:"services"`
	Networks map[string]struct {
		Internal bool `yaml:"internal"`
		IPAM     struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

// networksOf returns a service's networks, written as a list or as a mapping.
func networksOf(v any) []string {
	var out []string
	switch n := v.(type) {
	case []any:
		for _, x := range n {
			out = append(out, x.(string))
		}
	case map[string]any:
		for k := range n {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestDeployCompose: MariaDB, Redis, two replicas and nginx, each with a healthcheck; the
// replicas get config.yaml as a secret at the path serve reads, trust exactly nginx's network,
// and are given longer than server.shutdown_timeout to stop.
func TestDeployCompose(t *testing.T) {
	var cf composeFile
	decodeYAML(t, "deploy/docker-compose.yml", &cf)
	for _, name := range []string{composeService, "nginx", "mariadb", "redis"} {
		s, ok := cf.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		if len(s.Healthcheck.Test) < 2 {
			t.Errorf("%s has no healthcheck", name)
		}
	}
	w := cf.Services[composeService]
	if w.Deploy.Replicas != 2 {
		t.Errorf("%d wecampus replicas, want 2", w.Deploy.Replicas)
	}
	if !w.ReadOnly {
		t.Error("the wecampus containers' root filesystem is writable")
	}
	port := portOf(t, w.Environment["WECAMPUS_SERVER_ADDR"])
	wantCheck := []string{"CMD", imageBinary, "healthcheck", "--url", "http://127.0.0.1:" + port + "/readyz"}
	if !slices.Equal(w.Healthcheck.Test, wantCheck) {
		t.Errorf("wecampus healthcheck %q, want %q (the image has no shell, curl or wget)", w.Healthcheck.Test, wantCheck)
	}
	if !slices.Equal(w.Command, []string{"serve", "--config", configInImage}) {
		t.Errorf("wecampus command %q", w.Command)
	}
	if dep, _ := w.DependsOn["mariadb"].(map[string]any); dep["condition"] != "service_healthy" {
		t.Errorf("wecampus does not wait for a healthy MariaDB: %v", w.DependsOn["mariadb"])
	}

	// config.yaml is a secret mounted where serve reads it, from a file next to the compose file.
	var target, source string
	for _, s := range w.Secrets {
		if m, ok := s.(map[string]any); ok && m["target"] == configInImage {
			target, source = configInImage, m["source"].(string)
		}
	}
	if target == "" || cf.Secrets[source].File != "./config.yaml" {
		t.Errorf("config.yaml is not mounted as a secret at %s: %v", configInImage, w.Secrets)
	}

	cfg := loadWithEnv(t, w.Environment)
	// The replicas believe X-Forwarded-For from nginx's networks and from nothing else.
	var nginxNets []string
	for _, n := range networksOf(cf.Services["nginx"].Networks) {
		for _, c := range cf.Networks[n].IPAM.Config {
			nginxNets = append(nginxNets, c.Subnet)
		}
	}
	if len(nginxNets) == 0 || !slices.Equal(nginxNets, cfg.Server.TrustedProxies) {
		t.Errorf("server.trusted_proxies %q, want nginx's networks %q", cfg.Server.TrustedProxies, nginxNets)
	}
	for _, n := range networksOf(cf.Services["mariadb"].Networks) {
		if !cf.Networks[n].Internal {
			t.Errorf("MariaDB is on the non-internal network %s", n)
		}
	}
	grace, err := time.ParseDuration(w.StopGracePeriod)
	if err != nil || grace < cfg.Server.ShutdownTimeout+graceMargin {
		t.Errorf("stop_grace_period %q, want ≥ server.shutdown_timeout %v + %v", w.StopGracePeriod, cfg.Server.ShutdownTimeout, graceMargin)
	}

	// Every file the services mount is in deploy/.
	for name, s := range cf.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join("deploy", src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			}
		}
	}
}

// portOf returns the port of a listen address such as ":8080".
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}

// loadWithEnv loads a valid config with the WECAMPUS_* variables of env set: each must name a
// config key, and the result must validate.
func loadWithEnv(t *testing.T, env map[string]string) *Config {
	t.Helper()
	known := map[string]bool{}
	for _, k := range configKeys() {
		known[envName(k)] = true
	}
	for name, value := range env {
		if !strings.HasPrefix(name, envPrefix+"_") {
			continue
		}
		if !known[name] {
			t.Errorf("%s names no config key", name)
		}
		t.Setenv(name, value)
	}
	cfg, err := LoadConfig(writeConfig(t, baseConfig(t)))
	if err != nil {
		t.Fatalf("the deploy environment does not load: %v", err)
	}
	return cfg
}

// TestDeployNginx: nginx proxies to the replicas' port, appends the client it sees to
// X-Forwarded-For, lets callback bodies through and keeps /metrics inside.
func TestDeployNginx(t *testing.T) {
	t.Parallel()
	var conf strings.Builder
	for line := range strings.Lines(string(readDeployFile(t, "deploy/nginx/wecampus.conf"))) {
		if code, _, _ := strings.Cut(line, "#"); strings.TrimSpace(code) != "" {
			conf.WriteString(strings.Join(strings.Fields(code), " ") + "\n")
		}
	}
	c := conf.String()
	if strings.Count(c, "{") != strings.Count(c, "}") {
		t.Error("unbalanced braces")
	}
	var cf composeFile
	decodeYAML(t, "deploy/docker-compose.yml", &cf)
	port := portOf(t, cf.Services[composeService].Environment["WECAMPUS_SERVER_ADDR"])
	for _, want := range []string{
		"server " + composeService + ":" + port + " resolve",
		"proxy_pass http://wecampus;",
		"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
		"proxy_set_header Host $host;",
		"location = /metrics { return 404; }",
	} {
		if !strings.Contains(strings.ReplaceAll(c, "\n", " "), want) {
			t.Errorf("nginx config lacks %q", want)
		}
	}
	m := regexp.MustCompile(`client_max_body_size (\d+)m;`).FindStringSubmatch(c)
	if m == nil {
		t.Fatal("no client_max_body_size in megabytes")
	}
	if n, _ := strconv.Atoi(m[1]); n<<20 < maxBodyBytes {
		t.Errorf("client_max_body_size %sm is below the callback limit of %d bytes", m[1], maxBodyBytes)
	}
}

// k8sObject is the part of a Kubernetes manifest the tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas     int               `yaml:"replicas"`
		MinAvailable int               `yaml:"minAvailable"`
		Selector     k8sSelector       `yaml:"selector"` // Deployment, PodDisruptionBudget
		Ports        []k8sServicePort  `yaml:"ports"`    // Service
		PodSelector  map[string]string `yaml:"-"`
		Template     struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// k8sSelector is a label selector: matchLabels (Deployment, PDB) or a plain map (Service).
type k8sSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
	Plain       map[string]string `yaml:",inline"`
}

func (s k8sSelector) labels() map[string]string {
	if s.MatchLabels != nil {
		return s.MatchLabels
	}
	return s.Plain
}

type k8sServicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type k8sPodSpec struct {
	TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []k8sContainer `yaml:"containers"`
	Volumes    []struct {
		Name   string `yaml:"name"`
		Secret struct {
			SecretName string `yaml:"secretName"`
			Items      []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	Lifecycle      struct {
		PreStop struct {
			Sleep struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// TestDeployKubernetes: two replicas with readiness on /readyz and liveness on /healthz, a grace
// period covering preStop and server.shutdown_timeout, non-root on a read-only root filesystem,
// resources, config.yaml from a Secret, a Service and a PodDisruptionBudget selecting the pods.
func TestDeployKubernetes(t *testing.T) {
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	decodeYAML(t, "deploy/k8s/kustomization.yaml", &kust)
	objs := map[string]k8sObject{}
	for _, r := range kust.Resources {
		var o k8sObject
		decodeYAML(t, "deploy/k8s/"+r, &o)
		objs[o.Kind] = o
	}
	dep, svc, pdb := objs["Deployment"], objs["Service"], objs["PodDisruptionBudget"]
	if dep.Spec.Replicas != 2 {
		t.Errorf("%d replicas, want 2", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	ct := pod.Containers[0]
	env := map[string]string{}
	for _, e := range ct.Env {
		env[e.Name] = e.Value
	}
	cfg := loadWithEnv(t, env)

	ports := map[string]int{}
	for _, p := range ct.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if strconv.Itoa(ports["http"]) != portOf(t, env["WECAMPUS_SERVER_ADDR"]) ||
		strconv.Itoa(ports["metrics"]) != portOf(t, env["WECAMPUS_SERVER_METRICS_ADDR"]) {
		t.Errorf("container ports %v do not match server.addr and server.metrics_addr", ports)
	}
	for _, p := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{{"readiness", ct.ReadinessProbe, "/readyz"}, {"liveness", ct.LivenessProbe, "/healthz"}, {"startup", ct.StartupProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != "http" {
			t.Errorf("%s probe %+v, want GET %s on port http", p.name, p.probe, p.path)
		}
	}
	preStop := time.Duration(ct.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	if preStop == 0 || grace < preStop+cfg.Server.ShutdownTimeout+graceMargin {
		t.Errorf("terminationGracePeriodSeconds %v, want ≥ preStop %v + server.shutdown_timeout %v + %v",
			grace, preStop, cfg.Server.ShutdownTimeout, graceMargin)
	}
	sc := ct.SecurityContext
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 || !sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("security context: pod %+v, container %+v", pod.SecurityContext, sc)
	}
	if ct.Resources.Requests["cpu"] == "" || ct.Resources.Requests["memory"] == "" || ct.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v", ct.Resources)
	}

	// config.yaml comes from a Secret, mounted read-only where the args point.
	if !slices.Equal(ct.Args, []string{"serve", "--config", configInImage}) {
		t.Errorf("args %q", ct.Args)
	}
	var fromSecret bool
	for _, m := range ct.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret.SecretName != "" && m.ReadOnly && m.MountPath == path.Dir(configInImage) {
				for _, it := range v.Secret.Items {
					fromSecret = fromSecret || (it.Key == "config.yaml" && it.Path == path.Base(configInImage))
				}
			}
		}
	}
	if !fromSecret {
		t.Errorf("%s is not mounted from a Secret", configInImage)
	}

	// The Service and the budget select the Deployment's pods.
	podLabels := dep.Spec.Template.Metadata.Labels
	for what, sel := range map[string]map[string]string{
		"Deployment": dep.Spec.Selector.labels(), "Service": svc.Spec.Selector.labels(), "PodDisruptionBudget": pdb.Spec.Selector.labels(),
	} {
		if len(sel) == 0 || sel[k8sAppLabel] != podLabels[k8sAppLabel] {
			t.Errorf("%s selects %v, the pods are labelled %v", what, sel, podLabels)
		}
	}
	if pdb.Spec.MinAvailable != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %d, want 1", pdb.Spec.MinAvailable)
	}
	var servesHTTP bool
	for _, p := range svc.Spec.Ports {
		servesHTTP = servesHTTP || p.TargetPort == "http"
	}
	if !servesHTTP {
		t.Errorf("the Service does not send traffic to port http: %+v", svc.Spec.Ports)
	}

	var job k8sObject
	decodeYAML(t, "deploy/k8s/migrate-job.yaml", &job)
	if c := job.Spec.Template.Spec.Containers; job.Kind != "Job" || len(c) != 1 || !slices.Equal(c[0].Args, []string{"migrate", "--config", configInImage}) {
		t.Errorf("the migrate Job does not run wecampus migrate: %+v", job)
	}
}

// alertRules is deploy/prometheus/alerts.yml.
type alertRules struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestDeployAlertsAndDashboard: every alert is well-formed and has its entry in the README's
// runbook; every metric and label the alerts and the Grafana dashboard query exists in a real
// /metrics scrape of the service.
func TestDeployAlertsAndDashboard(t *testing.T) {
	var rules alertRules
	decodeYAML(t, "deploy/prometheus/alerts.yml", &rules)
	readme := string(readDeployFile(t, "README.md"))
	_, runbook, _ := strings.Cut(readme, "## 运维手册")
	exprs := map[string]string{} // expression → where
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("incomplete rule %+v", r)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if !strings.Contains(runbook, "#### "+r.Alert) {
				t.Errorf("the README's runbook has no entry for %s", r.Alert)
			}
			exprs[r.Expr] = "alert " + r.Alert
		}
	}
	if len(exprs) < 5 {
		t.Fatalf("%d alert rules", len(exprs))
	}
	var dash map[string]any
	if err := json.Unmarshal(readDeployFile(t, "deploy/grafana/wecampus.json"), &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	collectDashboardExprs(dash, "dashboard", exprs)

	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	decodeYAML(t, "deploy/prometheus/prometheus.yml", &prom)
	if len(prom.ScrapeConfigs) != 1 || prom.ScrapeConfigs[0].JobName != "wecampus" || !slices.Contains(prom.RuleFiles, "/etc/prometheus/alerts.yml") {
		t.Errorf("prometheus.yml: job %+v, rule files %q (the alerts expect job=\"wecampus\")", prom.ScrapeConfigs, prom.RuleFiles)
	}

	series, labels := scrapeService(t)
	for expr, where := range exprs {
		names, labelNames := promQLNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		for _, n := range names {
			switch {
			case series[n]:
			case n == "up": // added by Prometheus to every target
			default:
				t.Errorf("%s uses the metric %s, which /metrics does not have", where, n)
			}
		}
		for _, l := range labelNames {
			if !labels[l] && l != "instance" && l != "job" { // instance and job are target labels
				t.Errorf("%s uses the label %s, which no metric has", where, l)
			}
		}
	}
}

// collectDashboardExprs adds every PromQL query of a Grafana dashboard (panel targets and
// template variable queries) to exprs.
func collectDashboardExprs(v any, where string, exprs map[string]string) {
	switch n := v.(type) {
	case map[string]any:
		if title, ok := n["title"].(string); ok {
			where = "dashboard panel " + title
		}
		if e, ok := n["expr"].(string); ok {
			exprs[e] = where
		}
		if def, ok := n["definition"].(string); ok { // a query variable
			exprs[def] = "dashboard variable " + n["name"].(string)
		}
		for _, c := range n {
			collectDashboardExprs(c, where, exprs)
		}
	case []any:
		for _, c := range n {
			collectDashboardExprs(c, where, exprs)
		}
	}
}

// promQLKeywords are PromQL words that are not metric names: aggregations, modifiers and binary
// operators (functions are recognised by their parenthesis).
var promQLKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true,
	"limit_ratio": true, "by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true,
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

var labelValuesRE = regexp.MustCompile(`label_values\(([^,]+),\s*(\w+)\)`)

// promQLNames returns the metric names and label names a PromQL expression (or a Grafana
// label_values query) refers to. It is a small scanner, not a parser: enough for our files.
func promQLNames(expr string) (metrics, labels []string) {
	expr = labelValuesRE.ReplaceAllString(expr, "$1 by ($2)")
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\n' || expr[i] == '\t') {
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := strings.IndexByte(expr[i+1:], c)
			if end < 0 {
				return metrics, labels
			}
			i += end + 2
		case c == '{': // label matchers: name op "value", ...
			end := strings.IndexByte(expr[i:], '}')
			if end < 0 {
				return metrics, labels
			}
			for _, m := range regexp.MustCompile(`([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"`).FindAllStringSubmatch(expr[i:i+end], -1) {
				labels = append(labels, m[1])
			}
			i += end + 1
		case c == '[': // a range or subquery duration
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return metrics, labels
			}
			i += end + 1
		case c >= '0' && c <= '9' || c == '.': // a number or a duration
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			start := i
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
			word := expr[start:i]
			next := skipSpace(i)
			switch {
			case labelListKeywords[word] && next < len(expr) && expr[next] == '(':
				end := strings.IndexByte(expr[next:], ')')
				if end < 0 {
					return metrics, labels
				}
				for _, l := range strings.Split(expr[next+1:next+end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						labels = append(labels, l)
					}
				}
				i = next + end + 1
			case promQLKeywords[word], next < len(expr) && expr[next] == '(': // a function
			default:
				metrics = append(metrics, word)
			}
		default:
			i++
		}
	}
	return metrics, labels
}

func TestPromQLNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr            string
		metrics, labels []string
	}{
		{`up{job="wecampus"} == 0`, []string{"up"}, []string{"job"}},
		{`histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{route=~"/wecom/(a|b)"}[5m]))) > 3`,
			[]string{"x_bucket"}, []string{"le", "route", "route"}},
		{`max(a) > 600 or max(b_total offset 1h) > 200`, []string{"a", "b_total"}, nil},
		{`sum(rate(c{code=~"5.."}[$__rate_interval])) / sum(rate(c[1m]))`, []string{"c", "c"}, []string{"code"}},
		{`label_values(m{job="wecampus"}, instance)`, []string{"m"}, []string{"job", "instance"}},
	} {
		m, l := promQLNames(tc.expr)
		if !slices.Equal(m, tc.metrics) || !slices.Equal(l, tc.labels) {
			t.Errorf("promQLNames(%q) = %q, %q; want %q, %q", tc.expr, m, l, tc.metrics, tc.labels)
		}
	}
}

// scrapeService builds the service as serve does, against the WeCom simulator, makes one request
// of each kind the metrics count (a page, a refused callback, a WeCom call) and returns the
// series names and label names of its /metrics.
func scrapeService(t *testing.T) (series, labels map[string]bool) {
	t.Helper()
	sim := newSimulated(t)
	// Nothing listens there: the replica runs degraded and reports wecampus_redis_up 0.
	setKey(t, sim.tree, "redis.addr", "127.0.0.1:1")
	cfg, err := LoadConfig(sim.path(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := build(ctx, cfg, slog.New(slog.DiscardHandler), withServing())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()

	const envelope = "<xml><ToUserName><![CDATA[" + testCorpID + "]]></ToUserName><Encrypt><![CDATA[c2VjcmV0]]></Encrypt></xml>"
	get := func(method, target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		d.handler.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(envelope)))
		return rec
	}
	if rec := get(http.MethodGet, "/healthz"); rec.Code != http.StatusOK {
		t.Fatalf("/healthz: %d", rec.Code)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	if rec := get(http.MethodPost, "/wecom/callback?msg_signature=bad&timestamp="+ts+"&nonce=1"); rec.Code != http.StatusForbidden {
		t.Fatalf("badly signed callback: %d", rec.Code)
	}
	if _, err := d.wecom.GetUser(ctx, "nobody"); err == nil {
		t.Fatal("user/get of nobody succeeded")
	}
	rec := get(http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `route="/wecom/callback"`) {
		t.Errorf("the callback route label the alerts match is not in /metrics")
	}
	series, labels = map[string]bool{}, map[string]bool{}
	labelRE := regexp.MustCompile(`([a-zA-Z_]\w*)="`)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if n, ls, ok := strings.Cut(name, "{"); ok {
			name = n
			for _, m := range labelRE.FindAllStringSubmatch(ls+rest, -1) {
				labels[m[1]] = true
			}
		}
		series[name] = true
	}
	return series, labels
}
