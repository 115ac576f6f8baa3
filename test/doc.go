// Package test holds the integration tests that cross packages: the
// import rules between packages, and the test network of real hosts.
package test
