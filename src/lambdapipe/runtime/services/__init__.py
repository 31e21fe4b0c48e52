"""The local services, one module each, behind the `Service` interface."""
