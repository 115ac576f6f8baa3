package queue

import (
	"regexp"
	"strconv"
	"testing"
)

// maxIndex is the highest n of name[n] in a script's source.
func maxIndex(src, name string) int {
	n := 0
	for _, m := range regexp.MustCompile(name+`\[(\d+)\]`).FindAllStringSubmatch(src, -1) {
		i, _ := strconv.Atoi(m[1])
		n = max(n, i)
	}
	return n
}

// TestScriptWrappers checks that each script's typed wrapper passes as
// many KEYS and ARGV as the script reads, so that a field left out of a
// keys or args method is caught.
func TestScriptWrappers(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		keys, arg int
	}{
		{"enqueue", enqueueScript.src, len(enqueueKeys{}.keys()), len(enqueueArgs{}.args())},
		{"renew", renewScript.src, len(streamKey{}.keys()), len(ownerArgs{}.args())},
		{"ack", ackScript.src, len(ackKeys{}.keys()), len(ackArgs{}.args())},
		{"mark", markScript.src, len(markKeys{}.keys()), len(markArgs{}.args())},
		{"retry", retryScript.src, len(retryKeys{}.keys()), len(retryArgs{}.args())},
		{"dead", deadScript.src, len(deadKeys{}.keys()), len(deadArgs{}.args())},
		{"release", releaseScript.src, len(streamKey{}.keys()), len(releaseArgs{}.args())},
		{"promote", promoteScript.src, len(promoteKeys{}.keys()), len(promoteArgs{}.args())},
		{"forget", forgetScript.src, len(streamKey{}.keys()), len(forgetArgs{}.args())},
		{"min", minScript.src, len(keyList{}.keys()), len(noArgs{}.args())},
		{"dead retry", deadRetryScript.src, len(deadRetryKeys{}.keys()), len(deadEntry{}.args())},
		{"dead purge", deadPurgeScript.src, len(deadPurgeKeys{}.keys()), len(deadEntry{}.args())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := tt.keys, maxIndex(tt.src, "KEYS"); got != want {
				t.Errorf("wrapper passes %d KEYS, the script reads up to KEYS[%d]", got, want)
			}
			if got, want := tt.arg, maxIndex(tt.src, "ARGV"); got != want {
				t.Errorf("wrapper passes %d ARGV, the script reads up to ARGV[%d]", got, want)
			}
		})
	}
}
