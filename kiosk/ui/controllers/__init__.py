"""One controller per workflow of the terminal: checkout, the liveness challenge, the
non-face path, staff. Controllers hold the workflow's state, call the services through
the window's thread pool and tell pages what to draw."""
