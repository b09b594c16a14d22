"""Fault injection for the durable stores: power cuts, kill -9, corrupted files, a full medium."""
