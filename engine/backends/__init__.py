"""Where prompts run: the in-process backend (default) or a Ray cluster of workers.

`engine.queue.PromptQueue` dispatches the durable queue onto a backend's workers. Ray is an
optional extra: `engine.backends.ray_backend` is the only module that imports it, and only when
that backend is chosen.
"""
