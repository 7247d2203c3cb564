//! The process-wide rustls crypto provider.
//!
//! reqwest is built with `rustls-no-provider` and lapin with `rustls--ring`, while other crates in
//! the dependency graph can enable aws-lc-rs: with more than one provider compiled in, rustls
//! refuses to pick one and the first TLS client panics. Installing ring explicitly, once, before
//! any client is built removes the ambiguity.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Installs ring as the default rustls provider; safe to call any number of times.
///
/// If another provider was installed first (by an embedding program), that one is kept: any
/// installed provider satisfies the clients, and replacing it is impossible anyway.
pub fn install_crypto_provider() {
    INSTALL.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_twice_keeps_a_provider() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
