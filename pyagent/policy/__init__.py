"""Policy data and the policy author's tooling around the real `opa`."""
