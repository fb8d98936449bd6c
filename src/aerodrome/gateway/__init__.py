"""The governed OpenAI-compatible gateway: routes and the request pipeline."""
