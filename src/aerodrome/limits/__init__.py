"""Rate limits (RPM, TPM) and USD budgets with reservation (in-process backend)."""
