package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"mxq/queue"
	"mxq/queue/queuetest"
	"mxq/redisha"
)

// mxqJSON runs mxq with -json output decoded into v, and returns its
// stderr.
func mxqJSON(t *testing.T, v any, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("mxq %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("mxq %s: %v in\n%s", strings.Join(args, " "), err, out.String())
	}
	return errOut.String()
}

// mxq stats on one server shows its role and replicas.
func TestStatsOneServer(t *testing.T) {
	url, _ := startQueue(t)
	var st queue.Stats
	mxqJSON(t, &st, "-redis", url, "stats", "-json")
	if st.Redis == nil || st.Redis.Role != "master" || len(st.Redis.Replicas) != 0 || len(st.Redis.Sentinels) != 0 {
		t.Errorf("stats -json redis = %+v, want a master without replicas or sentinels", st.Redis)
	}
	out, err := mxq(t, url, "stats")
	if err != nil || !strings.Contains(out, "role master, offset ") || strings.Contains(out, "SENTINEL") {
		t.Errorf("mxq stats: %v\n%s", err, out)
	}
}

// Over Sentinel, mxq stats shows the primary, its replicas and each
// sentinel's view; mxq redis switchover moves the primary, and mxq stats
// shows the new one; with a URL of one server it refuses and says what
// to give instead.
func TestRedisSwitchoverCommand(t *testing.T) {
	set := queuetest.StartSet(t, 2)
	url := set.URL()
	old := set.Primary()

	var st queue.Stats
	mxqJSON(t, &st, "-redis", url, "stats", "-json")
	r := st.Redis
	if r == nil || r.Primary != old.Addr() || r.Role != "master" || len(r.Replicas) != 2 || len(r.Sentinels) != 3 {
		t.Fatalf("stats -json redis = %+v, want primary %s with 2 replicas and 3 sentinels", r, old.Addr())
	}
	for _, rep := range r.Replicas {
		if rep.State != "online" || rep.Behind < 0 {
			t.Errorf("replica %+v, want online", rep)
		}
	}
	for _, s := range r.Sentinels {
		if s.Err != "" || s.Primary != old.Addr() || s.Quorum != 2 || s.Replicas != 2 || s.Sentinels != 2 || s.Flags != "master" {
			t.Errorf("sentinel view %+v, want %s named, quorum 2, 2 replicas, 2 other sentinels, flags master", s, old.Addr())
		}
	}
	out, err := mxq(t, url, "stats")
	if err != nil || !strings.Contains(out, "redis "+old.Addr()+": role master") ||
		!strings.Contains(out, "SENTINEL") || strings.Count(out, " online ") != 2 {
		t.Errorf("mxq stats: %v\n%s", err, out)
	}
	t.Logf("mxq stats:\n%s", out)

	var res switchoverResult
	progress := mxqJSON(t, &res, "-redis", url, "redis", "switchover", "-json")
	var steps []string
	sc := bufio.NewScanner(strings.NewReader(progress))
	for sc.Scan() {
		var s redisha.SwitchoverStep
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("progress line %q: %v", sc.Text(), err)
		}
		if !slices.Contains(steps, s.Step) {
			steps = append(steps, s.Step)
		}
	}
	if want := []string{"find", "pause", "sync", "failover", "promoted", "demote", "unpause", "agree", "done"}; !slices.Equal(steps, want) {
		t.Errorf("progress steps %v, want %v\n%s", steps, want, progress)
	}
	if res.From != old.Addr() || res.To == old.Addr() || res.WritesWaited <= 0 || res.Took < res.WritesWaited {
		t.Errorf("switchover -json = %+v, want from %s to another, with its times", res, old.Addr())
	}
	t.Logf("writes waited %.3fs, switch-over %.3fs", res.WritesWaited, res.Took)
	mxqJSON(t, &st, "-redis", url, "stats", "-json")
	if st.Redis.Primary != res.To || st.Redis.Role != "master" {
		t.Errorf("stats after the switch-over: primary %s (%s), want %s", st.Redis.Primary, st.Redis.Role, res.To)
	}

	out, err = mxq(t, old.URL(), "redis", "switchover")
	if err == nil || !strings.Contains(err.Error(), "master_name=") {
		t.Errorf("switchover with one server's URL: %v, want a refusal naming the Sentinel URL\n%s", err, out)
	}
}
