"""Encoders, weight sources and heads."""
