//go:build integration

package integration

import (
	dto "github.com/prometheus/client_model/go"
)

// family is a scraped metric family: one sample per series.
type family struct{ Metrics []sample }

type sample struct {
	Labels map[string]string
	Value  float64
}

// toModel flattens parsed families into name → samples with labels, one
// sample per series (histograms contribute _count and _sum).
func toModel(fams map[string]*dto.MetricFamily) map[string]*family {
	out := map[string]*family{}
	add := func(name string, labels map[string]string, v float64) {
		f := out[name]
		if f == nil {
			f = &family{}
			out[name] = f
		}
		f.Metrics = append(f.Metrics, sample{Labels: labels, Value: v})
	}
	for name, f := range fams {
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				add(name, labels, m.Counter.GetValue())
			case m.Gauge != nil:
				add(name, labels, m.Gauge.GetValue())
			case m.Histogram != nil:
				add(name+"_count", labels, float64(m.Histogram.GetSampleCount()))
				add(name+"_sum", labels, m.Histogram.GetSampleSum())
			case m.Untyped != nil:
				add(name, labels, m.Untyped.GetValue())
			}
		}
	}
	return out
}
