//! One rustls crypto provider for the whole process.

use std::sync::Once;

/// Installs ring as the process-wide rustls provider, once.
///
/// kube's rustls stack uses ring; reqwest (`rustls-no-provider`) and lapin bring their own
/// expectations. rustls refuses to guess when more than one provider is compiled in and panics
/// at the first TLS handshake, so every entry point of this crate calls this first. A provider
/// installed earlier by the embedding program wins, which is what we want.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}
