"""Use cases as configuration: spec, versions, inputs, prompt templates, the runner."""
