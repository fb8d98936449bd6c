"""Identity: departments, users, roles, API keys, principals and permissions."""
