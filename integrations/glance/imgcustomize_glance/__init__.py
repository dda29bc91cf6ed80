"""Glance image import plugin running imgcustomize; see plugin.py."""
