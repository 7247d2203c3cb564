//! The process-wide rustls crypto provider.
//!
//! reqwest is built with `rustls-no-provider` and lapin with ring, so nothing picks a provider
//! implicitly; without one installed, the first TLS client built panics. ring (not aws-lc-rs)
//! keeps the static musl build simple.

/// Installs ring as the default provider. Idempotent: a second call (tests, or a provider
/// already installed by a dependency) keeps the first.
pub fn install_ring_provider() {
    // `Err` only means a provider is already installed, which is what we want.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}
