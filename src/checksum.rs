//! Checksum maths: the hash algorithms BigBlueButton checksums use, their lowercase hex digests,
//! and the two checksums built from them — the API's `H(call + query + secret)` and the
//! callback's `H(callbackURL + body + secret)`.
//!
//! This module owns the arithmetic and the algorithm names (as they are written in the
//! configuration). It does not parse requests, pick an algorithm from a request or compare
//! checksums ([`crate::api::checksum`] does), nor place a checksum in a callback URL
//! ([`crate::delivery::request`] does). It sits at the side: api, delivery and config use it, and
//! it uses none of them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 4] = [
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha384,
        ChecksumAlgorithm::Sha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha384 => "sha384",
            ChecksumAlgorithm::Sha512 => "sha512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Length of the lowercase hex digest: how the API tells which algorithm a client used.
    pub fn hex_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha1 => 40,
            ChecksumAlgorithm::Sha256 => 64,
            ChecksumAlgorithm::Sha384 => 96,
            ChecksumAlgorithm::Sha512 => 128,
        }
    }

    pub fn from_hex_len(len: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.hex_len() == len)
    }

    /// Lowercase hex digest of the concatenated parts.
    pub fn hex_digest(self, parts: &[&[u8]]) -> String {
        use sha2::Digest;
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            hex(&h.finalize())
        }
        match self {
            ChecksumAlgorithm::Sha1 => run::<sha1::Sha1>(parts),
            ChecksumAlgorithm::Sha256 => run::<sha2::Sha256>(parts),
            ChecksumAlgorithm::Sha384 => run::<sha2::Sha384>(parts),
            ChecksumAlgorithm::Sha512 => run::<sha2::Sha512>(parts),
        }
    }
}

/// The API checksum of `hooks/<call>` with this query (without `checksum`), as bbb-web computes
/// it: `H(call + query + secret)`.
pub fn api_checksum(algorithm: ChecksumAlgorithm, call: &str, query: &str, secret: &str) -> String {
    algorithm.hex_digest(&[call.as_bytes(), query.as_bytes(), secret.as_bytes()])
}

/// The callback checksum, as bbb-webhooks 3.x computes it: `H(callbackURL + body + secret)`.
pub fn callback_checksum(
    algorithm: ChecksumAlgorithm,
    callback_url: &str,
    body: &str,
    secret: &str,
) -> String {
    algorithm.hex_digest(&[callback_url.as_bytes(), body.as_bytes(), secret.as_bytes()])
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lengths() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_name(a.name()), Some(a));
            assert_eq!(ChecksumAlgorithm::from_hex_len(a.hex_len()), Some(a));
            assert_eq!(a.hex_digest(&[b"x"]).len(), a.hex_len());
        }
        assert_eq!(
            ChecksumAlgorithm::from_name(" SHA256 "),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(ChecksumAlgorithm::from_name("md5"), None);
        assert_eq!(ChecksumAlgorithm::from_hex_len(32), None);
    }

    #[test]
    fn digests_of_known_texts() {
        assert_eq!(
            ChecksumAlgorithm::Sha1.hex_digest(&[b"a", b"bc"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            api_checksum(ChecksumAlgorithm::Sha256, "a", "b", "c"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            callback_checksum(ChecksumAlgorithm::Sha1, "a", "b", "c"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
