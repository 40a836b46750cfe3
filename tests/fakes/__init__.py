"""Fake servers of the SaaS APIs kbsearch connects to, for tests and benchmarks."""
