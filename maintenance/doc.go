// Package maintenance keeps the maintenance lease and state in the
// queue's Redis, so that one dnsctl at a time, on any machine, takes one
// MX host out of service, and the next run continues what a killed one
// left. dnsctl is its user; it is not part of the queue's contract, and
// package queue knows nothing of it.
//
// # Guarantees
//
// The lease ({NAME}:maint:lease) has one owner token at a time and an
// expiry: Acquire takes it only when it is free or already the
// caller's, and says who holds it otherwise (*LeaseHeldError). Renew,
// Save and Clear act only while the caller still holds it, and return
// ErrLost when it does not, each check and write being one Lua script,
// so a run whose lease expired or was taken over cannot overwrite the
// state of the run that took over.
//
// The state ({NAME}:maint:state) outlives the lease: a dnsctl killed
// half-way loses the lease when it expires, but the state still says
// which host is out of DNS, so that the next run continues it instead of
// starting another. Clear deletes both together. Both keys carry the
// queue's hash tag and are rows of the one list of keys, the "Keys"
// table of docs/redis.md, which TestKeyLayout (queue/keys_test.go) holds
// to the keys of a full run, this package's included.
//
// # Never
//
// It never touches a key of the queue, never takes the lease for an
// empty owner, and never renews a lease by itself: the caller renews it
// while it works. Redis failures are returned as go-redis reports them,
// for the caller to wrap; they are not a *queue.Error, since nothing here
// is answered to an SMTP client.
package maintenance
