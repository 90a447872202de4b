"""Test doubles shared by the test suite and the benchmarks: a local OpenAI-compatible chat-completions server
and a local Hugging Face Hub look-alike. Nothing in the pipeline imports this package."""
