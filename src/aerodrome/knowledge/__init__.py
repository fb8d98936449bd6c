"""Shared knowledge: collections, connectors, parsing, chunking, embedding, index backends, search."""
