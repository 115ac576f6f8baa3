package promdash

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Series is one series of a query's result.
type Series struct {
	Labels map[string]string
	Points []Point
}

// Point is one sample. V may be NaN or ±Inf, as Prometheus returns them
// (a division by zero).
type Point struct {
	T time.Time
	V float64
}

// Fetch runs every query of the dashboard against the Prometheus server at
// baseURL (http://host:9090, with the path prefix of its --web.external-url
// if it has one) through its range query API, from start to end at step,
// and returns for each panel, in its order, the series of all its queries
// in the order Prometheus gave them. An error names the panel and the
// query; Prometheus's own error message is kept.
func (d *Dashboard) Fetch(ctx context.Context, baseURL string, start, end time.Time, step time.Duration) ([][]Series, error) {
	if step <= 0 {
		return nil, fmt.Errorf("step %v: must be positive", step)
	}
	if !end.After(start) {
		return nil, fmt.Errorf("time range %v to %v is empty", start, end)
	}
	u, err := url.Parse(strings.TrimRight(baseURL, "/") + "/api/v1/query_range")
	if err != nil {
		return nil, fmt.Errorf("prometheus URL: %w", err)
	}
	panels := make([][]Series, len(d.Panels))
	for i, p := range d.Panels {
		for _, q := range p.Queries {
			series, err := queryRange(ctx, u, q, start, end, step)
			if err != nil {
				return nil, fmt.Errorf("panel %q: query %q: %w", p.Title, q, err)
			}
			panels[i] = append(panels[i], series...)
		}
	}
	return panels, nil
}

// The reply of /api/v1/query_range.
type rangeReply struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string    `json:"metric"`
			Values [][2]json.RawMessage `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

func queryRange(ctx context.Context, u *url.URL, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	q := url.Values{
		"query": {expr},
		"start": {unixTime(start)},
		"end":   {unixTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	ru := *u
	ru.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ru.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r rangeReply
	// Prometheus answers an error with a 4xx or 5xx and the same JSON.
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %s", resp.Status)
		}
		return nil, fmt.Errorf("reply: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	if r.Status != "success" {
		if r.Error == "" {
			return nil, fmt.Errorf("HTTP %s, status %q", resp.Status, r.Status)
		}
		return nil, fmt.Errorf("prometheus: %s: %s", r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("result type %q, want matrix", r.Data.ResultType)
	}
	series := make([]Series, 0, len(r.Data.Result))
	for _, res := range r.Data.Result {
		s := Series{Labels: res.Metric, Points: make([]Point, 0, len(res.Values))}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		for _, v := range res.Values {
			p, err := point(v)
			if err != nil {
				return nil, fmt.Errorf("series %v: %w", s.Labels, err)
			}
			s.Points = append(s.Points, p)
		}
		series = append(series, s)
	}
	return series, nil
}

// unixTime prints t as Prometheus reads it, in seconds to the millisecond.
func unixTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// point reads a sample: [seconds as a number, value as a string, which
// may be "NaN" or "+Inf"].
func point(v [2]json.RawMessage) (Point, error) {
	sec, err := strconv.ParseFloat(string(v[0]), 64)
	if err != nil {
		return Point{}, fmt.Errorf("sample time %s: not a number", v[0])
	}
	var s string
	if err := json.Unmarshal(v[1], &s); err != nil {
		return Point{}, fmt.Errorf("sample value %s: not a string", v[1])
	}
	val, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return Point{}, fmt.Errorf("sample value %q: not a number", s)
	}
	return Point{T: time.UnixMilli(int64(math.Round(sec * 1000))).UTC(), V: val}, nil
}
