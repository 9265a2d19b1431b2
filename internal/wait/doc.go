// Package wait is the one wait-for-condition loop of the SDK: tests,
// cluster/clustertest and the examples poll a condition with it instead of
// sleeping a fixed time. It uses only timers and contexts, so it runs on a
// [testing/synctest] bubble's virtual clock when called inside one.
package wait
