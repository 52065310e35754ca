"""Money rules as pure functions: policies, subsidy, pricing, recommendation.
No database and no Qt in here."""
