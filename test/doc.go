// Package test holds the integration tests that cross packages: the
// import rules between packages, the test network of real hosts
// (test/network), and a rolling upgrade of the current tree against an
// earlier commit (test/upgrade).
package test
