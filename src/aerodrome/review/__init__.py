"""Human review: outputs held by a use case's review policy, and the reviewers' decisions."""
