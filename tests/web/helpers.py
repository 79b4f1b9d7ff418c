"""What the browser tests share besides fixtures."""

ACCESS_TOKEN = "web-test-token"  # the token the `token_server` fixture's server is started with
