"""Model providers: each speaks one wire protocol and returns OpenAI-shaped data."""
