"""Feedback on runs: ratings, flags, corrections and comments, and their export."""
