"""Token sources: the embedded synthetic model and OpenAI-compatible APIs."""
