package ingest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAheadTopics(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	topics := [2]string{"ev", "ap"}
	const poll = 100
	tests := []struct {
		name  string
		parts map[topicPartition]*fetchState
		want  [2]bool // events ahead, approvals ahead
	}{
		{"nothing fetched", nil, [2]bool{}},
		{"close together", map[topicPartition]*fetchState{
			{"ev", 0}: {lag: 10, last: at(0), poll: poll},
			{"ap", 0}: {lag: 10, last: at(time.Second), poll: poll},
		}, [2]bool{}},
		{"approvals ahead of lagging events", map[topicPartition]*fetchState{
			{"ev", 0}: {lag: 10, last: at(0), poll: poll},
			{"ev", 1}: {lag: 10, last: at(5 * time.Second), poll: poll},
			{"ap", 0}: {lag: 10, last: at(3 * time.Second), poll: poll},
		}, [2]bool{false, true}},
		{"events ahead of lagging approvals", map[topicPartition]*fetchState{
			{"ev", 0}: {lag: 10, last: at(9 * time.Second), poll: poll},
			{"ap", 0}: {lag: 3, last: at(0), poll: poll},
		}, [2]bool{true, false}},
		{"other topic caught up", map[topicPartition]*fetchState{
			{"ev", 0}: {lag: 0, last: at(0), poll: poll},
			{"ap", 0}: {lag: 10, last: at(time.Minute), poll: poll},
		}, [2]bool{}},
		{"other topic stalled", map[topicPartition]*fetchState{
			{"ev", 0}: {lag: 10, last: at(0), poll: poll - lagPolls},
			{"ap", 0}: {lag: 10, last: at(time.Minute), poll: poll},
		}, [2]bool{}},
		{"both ahead of the other's slowest partition: only the further", map[topicPartition]*fetchState{
			{"ev", 0}: {lag: 10, last: at(0), poll: poll},
			{"ev", 1}: {lag: 10, last: at(4 * time.Second), poll: poll},
			{"ap", 0}: {lag: 10, last: at(2 * time.Second), poll: poll},
			{"ap", 1}: {lag: 10, last: at(5 * time.Second), poll: poll},
		}, [2]bool{false, true}},
		{"other topics ignored", map[topicPartition]*fetchState{
			{"x", 0}:  {lag: 10, last: at(0), poll: poll},
			{"ap", 0}: {lag: 10, last: at(time.Minute), poll: poll},
		}, [2]bool{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, aheadTopics(tc.parts, topics, poll)); diff != "" {
				t.Errorf("aheadTopics (-want +got):\n%s", diff)
			}
		})
	}
}
