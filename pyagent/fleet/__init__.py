"""Fleet views: many devices decided in one streaming, parallel run; and the impact of a policy change."""
