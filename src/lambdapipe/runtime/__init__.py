"""Runtime: local services, processes and the lambdapipe home directory."""
