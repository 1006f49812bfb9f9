"""The zoo command line."""
