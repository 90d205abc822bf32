"""Tests of individual model families."""
