"""Response cache: exact answers for repeated requests, partitioned per department and data class."""
