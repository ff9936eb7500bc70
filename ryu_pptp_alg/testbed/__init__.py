"""Harness for the demo and integration tests: Open vSwitch userspace bridges,
network namespaces joined to them by veth pairs, and the controller process.

Everything here needs root and cleans up what it creates; nothing is killed by
name pattern, only by the pids we started or found in our own namespaces.
"""
