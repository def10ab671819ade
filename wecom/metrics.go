package wecom

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// apiMetrics counts and times every HTTP request to WeCom, gettoken included.
type apiMetrics struct {
	calls    *prometheus.CounterVec   // wecampus_wecom_calls_total{endpoint,errcode}
	duration *prometheus.HistogramVec // wecampus_wecom_call_duration_seconds{endpoint}
}

// newAPIMetrics builds the collectors and registers them with r (if not nil). When another
// Client registered them already, the registered collectors are shared.
func newAPIMetrics(r prometheus.Registerer) (*apiMetrics, error) {
	m := &apiMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wecampus_wecom_calls_total",
			Help: "WeCom API requests by endpoint and errcode (0 success; timeout/transport when the outcome is unknown; no_slot: not sent, the API's concurrency cap stayed full).",
		}, []string{"endpoint", "errcode"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wecampus_wecom_call_duration_seconds",
			Help:    "Duration of WeCom API requests by endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
	}
	if r == nil {
		return m, nil
	}
	var err error
	if m.calls, err = apiRegister(r, m.calls); err != nil {
		return nil, err
	}
	if m.duration, err = apiRegister(r, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// apiRegister registers c, or returns the equal collector registered before.
func apiRegister[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	err := r.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
