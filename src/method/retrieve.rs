//! Finding the cache entries whose subject a query mentions. INTERFACE STUB, being implemented.
