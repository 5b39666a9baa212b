"""Fuzzing pystack: generated cases against a pystack host on virtual time (docs/fuzzing.md)."""
