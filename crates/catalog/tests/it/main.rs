//! Catalog contract suite.
