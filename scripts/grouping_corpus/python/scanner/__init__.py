"""A small scanner application whose failures make the Python part of the grouping corpus."""
