"""Benchmarks (not tests): numbers, printed and written as JSON."""
