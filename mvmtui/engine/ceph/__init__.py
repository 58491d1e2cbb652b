"""Ceph: status model, JSON parsing and the OSD decommission workflow (to come)."""
