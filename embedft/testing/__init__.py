"""Test doubles shared by the test suite and the benchmarks: a local OpenAI-compatible chat-completions server.
Nothing in the pipeline imports this package."""
