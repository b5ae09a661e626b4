//! JOSE ECDSA algorithms `jwt-compact` 0.8 lacks, each implementing its
//! `Algorithm` trait so they verify through the same validator as the rest.
//! Verification only: their signing key type has no values.

pub mod es256_ring;
pub mod es384;
pub mod es512;

/// The signing key of a verify-only algorithm: no value exists, so `sign`
/// can never be called.
#[derive(Debug)]
pub enum NoSigningKey {}
