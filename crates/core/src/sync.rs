//! Reconciling a directory from its newest uploads.
