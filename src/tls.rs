//! The crypto behind outgoing HTTPS: rustls with the `ring` provider, installed once per process.
//!
//! This module owns the choice of provider and its installation. It does not build HTTP clients
//! (delivery and the command-line tools do) nor decide which certificates are trusted (reqwest's
//! platform verifier does, from the system's store).
//!
//! Why a process-wide install: reqwest is built without a provider of its own (its default one,
//! aws-lc-rs, is a long C build), and every reqwest client asks rustls for the process default
//! when it is built. So this must run before the first client; [`install_crypto_provider`] is
//! cheap and idempotent, and the places that build clients call it.

use std::sync::Once;

static INSTALL: Once = Once::new();

/// Makes `ring` the process's rustls provider, unless one was installed already (by us or by an
/// embedding program, whose choice stands).
pub fn install_crypto_provider() {
    INSTALL.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // An error means another thread installed one first: that one is used, fine too.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_client_can_be_built_after_the_install() {
        super::install_crypto_provider();
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        assert!(reqwest::Client::builder().build().is_ok());
    }
}
