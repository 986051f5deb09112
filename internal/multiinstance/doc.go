// Package multiinstance holds the tests of dcsync deployed as several
// service instances per datacenter: separate Syncers sharing their
// datacenter's stores (the Redis dedupe store, leader lock and checkpoints)
// and one audit log, over HTTP with each instance behind its own receiving
// address, and over the Redis Streams and Kafka wirings with a Node per
// instance (on Kafka, sharing an in-process dedupe store and lock, as the
// Redis ones would be shared across processes). See
// docs/deployment.md. It has no API.
package multiinstance
