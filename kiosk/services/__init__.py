"""Services: the only layer the UI and the CLI talk to. They hold the database
session edges and call the pure rules in billing and vision."""
