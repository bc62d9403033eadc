//! SSH public key validation and fingerprints.
